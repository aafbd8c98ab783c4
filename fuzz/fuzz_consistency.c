/* libFuzzer target: consistency tokens "P:O" (query-reader/consistency.c,
 * rd_consistency_parse: the X-Consistency-Token header, the events feed's
 * ?after= and the projector's NOTIFY payload). A token parses exactly when
 * an independent reading of the same grammar says it should, to the same
 * partition and offset, and the writer's own spelling of those parses back. */
#include "fuzz.h"

#include <stdint.h>

#include "reader.h"

/* The grammar again, written another way: digits ':' digits and nothing else,
 * the partition below RD_MAX_PARTITIONS, the offset within int64_t. */
static bool reference_parse(const char *s, int *partition, int64_t *offset)
{
	const char *colon = strchr(s, ':');
	unsigned long long p = 0, o = 0;

	if (!colon || colon == s || colon[1] == '\0')
		return false;
	for (const char *c = s; *c; c++)
		if (c != colon && (*c < '0' || *c > '9'))
			return false;
	for (const char *c = s; c < colon; c++) {
		p = p * 10 + (unsigned)(*c - '0');
		if (p >= RD_MAX_PARTITIONS)
			return false;
	}
	for (const char *c = colon + 1; *c; c++) {
		if (o > (uint64_t)INT64_MAX / 10 ||
		    o * 10 + (unsigned)(*c - '0') > (uint64_t)INT64_MAX)
			return false;
		o = o * 10 + (unsigned)(*c - '0');
	}
	*partition = (int)p;
	*offset = (int64_t)o;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *token = fuzz_text(data, size);
	char written[48];
	int partition = -1, ref_partition = -1, again_partition = -1;
	int64_t offset = -1, ref_offset = -1, again_offset = -1;

	if (!token)
		return 0;
	int rc = rd_consistency_parse(token, &partition, &offset);
	bool expected = reference_parse(token, &ref_partition, &ref_offset);
	FUZZ_CHECK((rc == 0) == expected, "\"%s\": parse %d, reference %d", token, rc, expected);
	if (rc == 0) {
		FUZZ_CHECK(partition == ref_partition && offset == ref_offset,
			   "\"%s\": %d:%lld, reference %d:%lld", token, partition,
			   (long long)offset, ref_partition, (long long)ref_offset);
		/* as cmd-writer/http_api.c and the projector write a position */
		snprintf(written, sizeof(written), "%d:%lld", partition, (long long)offset);
		FUZZ_CHECK(rd_consistency_parse(written, &again_partition, &again_offset) == 0 &&
			       again_partition == partition && again_offset == offset,
			   "\"%s\" written back as \"%s\" does not parse the same", token, written);
	}
	free(token);
	return 0;
}
