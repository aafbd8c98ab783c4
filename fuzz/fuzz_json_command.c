/* libFuzzer target: a command body through the writer's checks, with the field
 * table of every command cmd-writer routes (cmd-writer/commands.c). The first
 * byte picks the command, the rest is the body: vp_json_parse (strict), then,
 * as handle_command does, vp_json_check, vp_json_uuids_lower and the command's
 * validate. Invariants: a refusal always names a field; a body that passes
 * still passes once its ids are lower-cased (twice is once) and once printed
 * by cJSON and parsed again (what the writer hashes and stores is text the
 * strict parser takes), and printing it is a fixed point. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "decide.h"
#include "vp_json.h"

#define NOW_US INT64_C(1795000000000000) /* 2026-11-18 */

static const WrCommand *command_at(unsigned index)
{
	size_t total = 0;

	for (size_t t = 0; t < wr_n_command_tables; t++)
		total += *wr_command_tables[t].n;
	index %= (unsigned)total;
	for (size_t t = 0; t < wr_n_command_tables; t++) {
		if (index < *wr_command_tables[t].n)
			return &wr_command_tables[t].table[index];
		index -= (unsigned)*wr_command_tables[t].n;
	}
	return NULL;
}

/* The writer's checks on body; 0 when it is valid. */
static int check_body(const WrCommand *c, cJSON *body, VpError *err)
{
	vp_error_clear(err);
	int rc = vp_json_check(body, c->fields, c->n_fields, false, err);
	FUZZ_CHECK((rc == 0) == (err->n_details == 0), "%s: check %d with %d details", c->name, rc,
		   err->n_details);
	if (rc == 0)
		vp_json_uuids_lower(body, c->fields, c->n_fields);
	if (c->validate)
		c->validate(body, NOW_US, err);
	bool refused = vp_error_finish_validation(err);
	FUZZ_CHECK(!refused || err->n_details > 0 || err->status != 400,
		   "%s: refused without a field", c->name);
	return refused ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *body = NULL, *again = NULL;
	char *printed = NULL, *printed_again = NULL;
	VpError err;

	if (size == 0)
		return 0;
	const WrCommand *c = command_at(data[0]);
	/* exactly size - 1 bytes, no NUL after them: ASan sees a read past len */
	char *text = malloc(size - 1 ? size - 1 : 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	vp_error_clear(&err);
	if (vp_json_parse(text, size - 1, &body, &err) < 0) {
		FUZZ_CHECK(body == NULL && err.status == 400 && err.n_details == 1,
			   "parse refusal: status %d, %d details", err.status, err.n_details);
		goto done;
	}
	FUZZ_CHECK(body != NULL, "parsed to nothing");
	if (check_body(c, body, &err) < 0)
		goto done;
	/* lower-casing ids is idempotent and keeps the body valid */
	printed = vp_json_print(body);
	FUZZ_CHECK(printed != NULL, "print");
	vp_json_uuids_lower(body, c->fields, c->n_fields);
	printed_again = vp_json_print(body);
	FUZZ_CHECK(printed_again && !strcmp(printed, printed_again),
		   "%s: ids lowered twice differ: %s / %s", c->name, printed, printed_again);
	free(printed_again);
	printed_again = NULL;
	/* the printed body is strict JSON, still valid, and prints the same */
	vp_error_clear(&err);
	FUZZ_CHECK(vp_json_parse(printed, strlen(printed), &again, &err) == 0,
		   "%s: printed body refused (%s): %s", c->name,
		   err.n_details ? err.details[0].issue : err.message, printed);
	FUZZ_CHECK(check_body(c, again, &err) == 0, "%s: printed body invalid (%s %s): %s", c->name,
		   err.n_details ? err.details[0].field : "",
		   err.n_details ? err.details[0].issue : err.message, printed);
	printed_again = vp_json_print(again);
	FUZZ_CHECK(printed_again && !strcmp(printed, printed_again),
		   "%s: printing is not a fixed point: %s / %s", c->name, printed, printed_again);
done:
	free(printed);
	free(printed_again);
	cJSON_Delete(again);
	cJSON_Delete(body);
	free(text);
	return 0;
}
