/* Strict JSON parsing and table-driven validation of command bodies (see
 * vp_json.h). cJSON itself accepts raw control characters in strings, passes
 * invalid UTF-8 through and truncates strings at an embedded NUL, so
 * vp_json_parse screens the raw text for those before cJSON sees it. */
#include "vp_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vp_buf.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define PATH_MAX_LEN 192

size_t vp_utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	if (s[0] == 0xE0)
		lo = 0xA0; /* overlong */
	else if (s[0] == 0xED)
		hi = 0x9F; /* surrogates */
	else if (s[0] == 0xF0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xF4)
		hi = 0x8F; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/* Offset of the first byte that is not part of well-formed UTF-8, or len. */
static size_t utf8_invalid_at(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		/* ASCII runs, most of any text here, eight bytes at a time */
		uint64_t word;
		if (len - i >= sizeof(word)) {
			memcpy(&word, p + i, sizeof(word));
			if (!(word & 0x8080808080808080ULL)) {
				i += sizeof(word);
				continue;
			}
		}
		size_t n = vp_utf8_seq_len(p + i, len - i);
		if (n == 0)
			return i;
		i += n;
	}
	return len;
}

bool vp_json_utf8_valid(const char *s, size_t len)
{
	return utf8_invalid_at(s, len) == len;
}

/* U+0000-U+001F, U+007F and U+0080-U+009F (C1, encoded C2 80..C2 9F). */
static bool is_control(const unsigned char *p, size_t seq_len)
{
	if (seq_len == 1)
		return p[0] < 0x20 || p[0] == 0x7F;
	return seq_len == 2 && p[0] == 0xC2 && p[1] <= 0x9F;
}

bool vp_utf8_printable(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = vp_utf8_seq_len(p + i, len - i);
		if (n == 0 || is_control(p + i, n))
			return false;
		i += n;
	}
	return true;
}

static bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int parse_error(VpError *err, const char *issue, size_t at)
{
	vp_error_add_detail(err, "body", "%s at byte %zu", issue, at);
	return vp_error_set(err, 400, VP_ERR_VALIDATION, "malformed JSON body");
}

/* Byte tests on eight bytes at once (each exact as to whether any byte
 * matches: a borrow only starts at a byte that does). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static bool has_below(uint64_t w, unsigned n) /* n <= 128 */
{
	return ((w - ONES * n) & ~w & HIGHS) != 0;
}

static bool has_byte(uint64_t w, unsigned char b)
{
	return has_below(w ^ (ONES * b), 1);
}

bool vp_json_plain8(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return !has_below(w, 0x20) && !has_byte(w, '"') && !has_byte(w, '\\');
}

/* Outside strings only a quote or a NUL byte matters. */
static bool structure8(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return !has_below(w, 1) && !has_byte(w, '"');
}

/* Refuses what cJSON would let through: NUL bytes, \u0000 escapes and raw control
 * characters inside strings. Returns the offending offset, or len. */
static size_t screen_strings(const char *text, size_t len, const char **issue)
{
	bool in_string = false;
	size_t i = 0;

	while (i < len) {
		if (len - i >= 8 && (in_string ? vp_json_plain8(text + i) : structure8(text + i))) {
			i += 8;
			continue;
		}
		/* a word with something in it: byte by byte to its end (not a word
		 * test at each byte, which structure-dense text kept failing) */
		for (size_t stop = len - i > 8 ? i + 8 : len; i < stop;) {
			unsigned char c = (unsigned char)text[i++];
			if (c == '\0') {
				*issue = "NUL byte";
				return i - 1;
			}
			if (!in_string) {
				in_string = c == '"';
				continue;
			}
			if (c == '"') {
				in_string = false;
			} else if (c < 0x20) {
				*issue = "control character in string";
				return i - 1;
			} else if (c == '\\' && i < len) {
				if (text[i] == 'u' && i + 4 < len &&
				    memcmp(text + i + 1, "0000", 4) == 0) {
					*issue = "\\u0000 in string";
					return i - 1;
				}
				i++; /* the escaped character, whatever it is */
			}
		}
	}
	return len;
}

int vp_json_parse(const char *text, size_t len, cJSON **out, VpError *err)
{
	const char *issue = NULL;
	const char *end = NULL;
	cJSON *parsed;
	size_t at;

	*out = NULL;
	at = 0;
	while (at < len && is_json_space(text[at]))
		at++;
	if (at == len)
		return parse_error(err, "empty JSON text", at);
	at = utf8_invalid_at(text, len);
	if (at < len)
		return parse_error(err, "invalid UTF-8", at);
	at = screen_strings(text, len, &issue);
	if (at < len)
		return parse_error(err, issue, at);

	parsed = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!parsed) {
		/* cJSON reports the failing position through end (thread-safe,
		 * unlike cJSON_GetErrorPtr). */
		at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
		return parse_error(err, "invalid JSON", at);
	}
	at = (size_t)(end - text);
	while (at < len && is_json_space(text[at]))
		at++;
	if (at < len) {
		cJSON_Delete(parsed);
		return parse_error(err, "unexpected data after the JSON value", at);
	}
	*out = parsed;
	return 0;
}

/* Field paths longer than the buffer are cut; vp_error cuts them further anyway. */
static void path_format(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_format(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, cap, fmt, ap);
	va_end(ap);
}

/* Appends src to out[*used] within cap, cutting as snprintf would. */
static void path_append(char *out, size_t cap, size_t *used, const char *src)
{
	size_t len = strlen(src);
	if (*used + len >= cap)
		len = cap - 1 - *used;
	memcpy(out + *used, src, len);
	*used += len;
	out[*used] = '\0';
}

/* "blocks[2]" + "start" -> "blocks[2].start"; a top-level name stays as it is.
 * Every field of every checked object passes here, error or not (the event
 * rebuild checks millions), so no printf. */
static void join_path(char *out, size_t cap, const char *parent, const char *name)
{
	size_t used = 0;
	out[0] = '\0';
	if (parent[0]) {
		path_append(out, cap, &used, parent);
		path_append(out, cap, &used, ".");
	}
	path_append(out, cap, &used, name);
}

static void add_enum_detail(VpError *err, const char *path, const char *const *values)
{
	VpBuf list;

	/* Room for the prefix in VpErrorDetail.issue; values that do not fit are
	 * replaced by "..." (VpBuf keeps its content when an append fails). */
	vp_buf_init(&list, sizeof(err->details[0].issue) - sizeof("must be one of: ...") - 1);
	for (size_t i = 0; values[i]; i++) {
		if (vp_buf_printf(&list, "%s%s", i ? ", " : "", values[i]) < 0)
			break;
	}
	vp_error_add_detail(err, path, "must be one of: %s%s", vp_buf_str(&list),
			    list.oom ? "..." : "");
	vp_buf_free(&list);
}

static bool check_object(const cJSON *obj, const VpJsonField *fields, size_t n, bool allow_unknown,
			 const char *path, VpError *err);

static bool check_string(const cJSON *item, const VpJsonField *f, const char *path, VpError *err)
{
	const char *s;
	size_t len;

	if (!cJSON_IsString(item) || !item->valuestring) {
		vp_error_add_detail(err, path, "must be a string");
		return false;
	}
	s = item->valuestring;
	len = strlen(s);
	if (!vp_json_utf8_valid(s, len)) {
		vp_error_add_detail(err, path, "must be valid UTF-8");
		return false;
	}
	if (f->max_len && len > f->max_len) {
		vp_error_add_detail(err, path, "must be at most %zu characters", f->max_len);
		return false;
	}
	if (len < f->min_len) {
		if (f->min_len == 1)
			vp_error_add_detail(err, path, "must not be empty");
		else
			vp_error_add_detail(err, path, "must be at least %zu characters",
					    f->min_len);
		return false;
	}
	if (f->enum_values) {
		for (size_t i = 0; f->enum_values[i]; i++)
			if (strcmp(s, f->enum_values[i]) == 0)
				return true;
		add_enum_detail(err, path, f->enum_values);
		return false;
	}
	return true;
}

static bool check_range(double d, const VpJsonField *f, const char *path, VpError *err)
{
	if (f->min < f->max && (d < (double)f->min || d > (double)f->max)) {
		vp_error_add_detail(err, path, "must be between %lld and %lld", f->min, f->max);
		return false;
	}
	return true;
}

static bool check_array(const cJSON *item, const VpJsonField *f, const char *path, VpError *err)
{
	char item_path[PATH_MAX_LEN];
	const cJSON *element;
	size_t count;
	size_t index = 0;
	bool good = true;

	if (!cJSON_IsArray(item)) {
		vp_error_add_detail(err, path, "must be an array");
		return false;
	}
	count = (size_t)cJSON_GetArraySize(item);
	if (f->max_len && count > f->max_len) {
		vp_error_add_detail(err, path, "must have at most %zu items", f->max_len);
		return false;
	}
	if (count < f->min_len) {
		if (f->min_len == 1)
			vp_error_add_detail(err, path, "must not be empty");
		else
			vp_error_add_detail(err, path, "must have at least %zu items", f->min_len);
		return false;
	}
	if (!f->fields)
		return true;
	cJSON_ArrayForEach(element, item)
	{
		path_format(item_path, sizeof(item_path), "%s[%zu]", path, index++);
		if (!check_object(element, f->fields, f->n_fields, f->allow_unknown, item_path,
				  err))
			good = false;
	}
	return good;
}

/* A refused time that parses once its offset is replaced by Z: only its UTC
 * instant (e.g. 0001-01-01T00:00:00+00:01) left years 1-9999. Worth its own
 * issue, since the text a client sent looks right. */
static bool utc_out_of_range(const char *s, size_t len)
{
	char as_utc[64];
	int64_t us;

	const char *off;

	if (len < 7 || len >= sizeof(as_utc))
		return false;
	off = s + len - 6; /* formed only once it points inside s (fuzzing review) */
	if ((off[0] != '+' && off[0] != '-') || off[3] != ':')
		return false;
	for (int i = 1; i < 6; i++)
		if (i != 3 && (off[i] < '0' || off[i] > '9'))
			return false;
	if (off[1] > '2' || (off[1] == '2' && off[2] > '3') || off[4] > '5')
		return false; /* an offset the parser refuses whatever the instant */
	memcpy(as_utc, s, len - 6);
	as_utc[len - 6] = 'Z';
	return vp_time_parse_rfc3339(as_utc, len - 5, &us) == 0;
}

static bool check_value(const cJSON *item, const VpJsonField *f, const char *path, VpError *err)
{
	const char *s = cJSON_IsString(item) ? item->valuestring : NULL;
	size_t len = s ? strlen(s) : 0;
	VpUuid uuid;
	int32_t days;
	int64_t us;
	double d;

	switch (f->type) {
	case VP_JSON_STRING:
		return check_string(item, f, path, err);
	case VP_JSON_INT:
		d = cJSON_IsNumber(item) ? item->valuedouble : NAN;
		if (!isfinite(d) || d != floor(d) || fabs(d) > (double)VP_JSON_MAX_SAFE_INT) {
			vp_error_add_detail(err, path, "must be an integer");
			return false;
		}
		return check_range(d, f, path, err);
	case VP_JSON_NUMBER:
		d = cJSON_IsNumber(item) ? item->valuedouble : NAN;
		if (!isfinite(d)) {
			vp_error_add_detail(err, path, "must be a number");
			return false;
		}
		return check_range(d, f, path, err);
	case VP_JSON_BOOL:
		if (!cJSON_IsBool(item)) {
			vp_error_add_detail(err, path, "must be a boolean");
			return false;
		}
		return true;
	case VP_JSON_OBJECT:
		if (!cJSON_IsObject(item)) {
			vp_error_add_detail(err, path, "must be an object");
			return false;
		}
		if (!f->fields)
			return true;
		return check_object(item, f->fields, f->n_fields, f->allow_unknown, path, err);
	case VP_JSON_ARRAY:
		return check_array(item, f, path, err);
	case VP_JSON_UUID:
		if (!s || vp_uuid_parse(s, len, &uuid) < 0) {
			vp_error_add_detail(err, path, "must be a UUID");
			return false;
		}
		return true;
	case VP_JSON_DATE:
		if (!s || vp_date_parse(s, len, &days) < 0) {
			vp_error_add_detail(err, path, "must be a date YYYY-MM-DD");
			return false;
		}
		return true;
	case VP_JSON_TIME:
		if (s && vp_time_parse_rfc3339(s, len, &us) < 0 && utc_out_of_range(s, len)) {
			vp_error_add_detail(err, path, "must fall in years 0001-9999 once in UTC");
			return false;
		}
		if (!s || vp_time_parse_rfc3339(s, len, &us) < 0) {
			vp_error_add_detail(err, path, "must be an RFC 3339 time with offset");
			return false;
		}
		return true;
	}
	vp_error_add_detail(err, path, "has an unsupported type in the field table");
	return false;
}

static bool is_known(const char *key, const VpJsonField *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, fields[i].name) == 0)
			return true;
	return false;
}

/* Members named `name`: cJSON keeps duplicate keys and lookups see the first, so
 * a repeated key could smuggle a second value past the check. */
static int count_members(const cJSON *obj, const char *name)
{
	const cJSON *child;
	int count = 0;

	cJSON_ArrayForEach(child, obj)
	{
		if (child->string && strcmp(child->string, name) == 0)
			count++;
	}
	return count;
}

static bool check_object(const cJSON *obj, const VpJsonField *fields, size_t n, bool allow_unknown,
			 const char *path, VpError *err)
{
	char child_path[PATH_MAX_LEN];
	const cJSON *child;
	bool good = true;

	if (!cJSON_IsObject(obj)) {
		vp_error_add_detail(err, path[0] ? path : "body", "must be an object");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const VpJsonField *f = &fields[i];
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, f->name);

		join_path(child_path, sizeof(child_path), path, f->name);
		if (item && count_members(obj, f->name) > 1) {
			vp_error_add_detail(err, child_path, "must not be repeated");
			good = false;
			continue;
		}
		if (!item || cJSON_IsNull(item)) {
			if (f->required) {
				vp_error_add_detail(err, child_path, "is required");
				good = false;
			}
			continue;
		}
		if (!check_value(item, f, child_path, err))
			good = false;
	}
	if (allow_unknown)
		return good;
	cJSON_ArrayForEach(child, obj)
	{
		const char *key = child->string ? child->string : "";
		if (is_known(key, fields, n))
			continue;
		join_path(child_path, sizeof(child_path), path, key);
		vp_error_add_detail(err, child_path, "is not a known field");
		good = false;
	}
	return good;
}

int vp_json_check(const cJSON *obj, const VpJsonField *fields, size_t n, bool allow_unknown,
		  VpError *err)
{
	return check_object(obj, fields, n, allow_unknown, "", err) ? 0 : -1;
}

static void uuid_lower(cJSON *item)
{
	VpUuid parsed;
	char *s = cJSON_IsString(item) ? item->valuestring : NULL;

	/* vp_uuid_format's text has the parsed text's length: rewritten in place */
	if (s && vp_uuid_parse(s, strlen(s), &parsed) == 0)
		vp_uuid_format(&parsed, s);
}

void vp_json_uuids_lower(cJSON *obj, const VpJsonField *fields, size_t n)
{
	cJSON *element;

	if (!cJSON_IsObject(obj))
		return;
	for (size_t i = 0; i < n; i++) {
		const VpJsonField *f = &fields[i];
		cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, f->name);

		if (f->type == VP_JSON_UUID)
			uuid_lower(item);
		else if (f->type == VP_JSON_OBJECT && f->fields)
			vp_json_uuids_lower(item, f->fields, f->n_fields);
		else if (f->type == VP_JSON_ARRAY && f->fields && cJSON_IsArray(item))
			cJSON_ArrayForEach(element, item)
				vp_json_uuids_lower(element, f->fields, f->n_fields);
	}
}

const char *vp_json_str(const cJSON *obj, const char *name)
{
	const cJSON *item;

	if (!cJSON_IsObject(obj))
		return NULL;
	item = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(item) ? item->valuestring : NULL;
}

bool vp_json_int(const cJSON *obj, const char *name, long long *out)
{
	const cJSON *item;
	double d;

	if (!cJSON_IsObject(obj))
		return false;
	item = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsNumber(item))
		return false;
	d = item->valuedouble;
	if (!isfinite(d) || d != floor(d) || fabs(d) > (double)VP_JSON_MAX_SAFE_INT)
		return false;
	*out = (long long)d;
	return true;
}

bool vp_json_bool(const cJSON *obj, const char *name, bool *out)
{
	const cJSON *item;

	if (!cJSON_IsObject(obj))
		return false;
	item = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsBool(item))
		return false;
	*out = cJSON_IsTrue(item);
	return true;
}

bool vp_json_number(const cJSON *obj, const char *name, double *out)
{
	const cJSON *item;

	if (!cJSON_IsObject(obj))
		return false;
	item = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
		return false;
	*out = item->valuedouble;
	return true;
}

char *vp_json_print(const cJSON *j)
{
	return j ? cJSON_PrintUnformatted(j) : NULL;
}

static const char *type_name(VpJsonType type)
{
	static const char *const names[] = {
		[VP_JSON_STRING] = "string", [VP_JSON_INT] = "int",	[VP_JSON_BOOL] = "bool",
		[VP_JSON_NUMBER] = "number", [VP_JSON_OBJECT] = "object", [VP_JSON_ARRAY] = "array",
		[VP_JSON_UUID] = "uuid",     [VP_JSON_DATE] = "date",	[VP_JSON_TIME] = "time",
	};
	return (size_t)type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "?";
}

static cJSON *field_describe(const VpJsonField *f)
{
	cJSON *out = cJSON_CreateObject();
	bool ok = out && cJSON_AddStringToObject(out, "name", f->name) &&
		  cJSON_AddStringToObject(out, "type", type_name(f->type)) &&
		  cJSON_AddBoolToObject(out, "required", f->required);
	if (ok && f->max_len)
		ok = cJSON_AddNumberToObject(out, "max_len", (double)f->max_len) != NULL;
	if (ok && f->min_len)
		ok = cJSON_AddNumberToObject(out, "min_len", (double)f->min_len) != NULL;
	if (ok && f->min < f->max)
		ok = cJSON_AddNumberToObject(out, "min", (double)f->min) &&
		     cJSON_AddNumberToObject(out, "max", (double)f->max);
	if (ok && f->enum_values) {
		cJSON *values = cJSON_AddArrayToObject(out, "enum");
		for (size_t i = 0; ok && f->enum_values[i]; i++)
			ok = values && cJSON_AddItemToArray(values,
							    cJSON_CreateString(f->enum_values[i]));
		ok = ok && values;
	}
	if (ok && f->fields) {
		cJSON *nested = vp_json_fields_describe(f->fields, f->n_fields);
		ok = nested && cJSON_AddItemToObject(out, "fields", nested);
		if (!ok)
			cJSON_Delete(nested);
	}
	if (ok && f->allow_unknown)
		ok = cJSON_AddTrueToObject(out, "allow_unknown") != NULL;
	if (!ok) {
		cJSON_Delete(out);
		return NULL;
	}
	return out;
}

cJSON *vp_json_fields_describe(const VpJsonField *fields, size_t n)
{
	cJSON *all = cJSON_CreateArray();
	for (size_t i = 0; all && i < n; i++) {
		cJSON *one = field_describe(&fields[i]);
		if (!one || !cJSON_AddItemToArray(all, one)) {
			cJSON_Delete(one);
			cJSON_Delete(all);
			return NULL;
		}
	}
	return all;
}
