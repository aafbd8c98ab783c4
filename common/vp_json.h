/* cJSON helpers for command bodies: a strict parser (UTF-8, no NUL, no trailing
 * data), a declarative field table checked in one pass that reports every bad
 * field into a VpError, and getters that never trust a value's type. */
#ifndef VP_JSON_H
#define VP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "vp_buf.h"
#include "vp_error.h"

/* Integers travel as JSON numbers (doubles): only ±2^53 are exact. */
#define VP_JSON_MAX_SAFE_INT 9007199254740992LL

typedef enum {
	VP_JSON_STRING, /* UTF-8 text, no NUL, at most max_len bytes, optional enum */
	VP_JSON_INT,	/* integral number within ±2^53, and [min, max] when min < max */
	VP_JSON_BOOL,
	VP_JSON_NUMBER, /* any finite number, and [min, max] when min < max */
	VP_JSON_OBJECT, /* checked against `fields` when set */
	VP_JSON_ARRAY,	/* at most max_len items when set; each item an object checked
			   against `fields` when set */
	VP_JSON_UUID,	/* canonical 8-4-4-4-12 text */
	VP_JSON_DATE,	/* YYYY-MM-DD */
	VP_JSON_TIME,	/* RFC 3339 with offset */
} VpJsonType;

typedef struct VpJsonField {
	const char *name;
	VpJsonType type;
	bool required;	    /* null counts as missing; for optional fields as absent */
	size_t max_len;	    /* STRING: bytes (0 = no limit); ARRAY: items (0 = no limit) */
	long long min, max; /* INT and NUMBER, when min < max */
	const char *const *enum_values;	  /* STRING: NULL-terminated allowed values */
	size_t min_len;			  /* STRING: bytes, 1 = must not be empty; ARRAY: items */
	const struct VpJsonField *fields; /* OBJECT, or ARRAY of objects: their table */
	size_t n_fields;
	bool allow_unknown; /* nested table: tolerate keys it does not name */
} VpJsonField;

/* Strict parse of len bytes (no NUL needed): valid UTF-8 throughout, no NUL byte
 * nor \u0000 escape, no raw control character inside strings, nothing but white
 * space after the value. 0 with *out owned by the caller, or -1 with err set to
 * 400 VALIDATION_ERROR and a {"body", issue at byte N} detail. */
int vp_json_parse(const char *text, size_t len, cJSON **out, VpError *err);

/* Checks obj against fields[0..n): adds one detail per bad field (issues are
 * "is required", "must be a string", "must be at most N characters", "must be one
 * of: a, b", "must be an integer", "must be between X and Y", "must be a UUID",
 * "must be a date YYYY-MM-DD", "must be an RFC 3339 time with offset", "is not a
 * known field", ...); nested fields are named "weight.unit", "blocks[2].start".
 * Returns 0 when every field is good, -1 when it added details. It does not set
 * the status: add cross-field checks, then call vp_error_finish_validation. */
int vp_json_check(const cJSON *obj, const VpJsonField *fields, size_t n, bool allow_unknown,
		  VpError *err);

/* A field table as JSON, for tools and tests that generate or check values
 * from the same tables the daemons use: [{"name", "type" ("string", "int",
 * "bool", "number", "object", "array", "uuid", "date", "time"), "required",
 * and when set "max_len", "min_len", "min", "max", "enum": [...], "fields":
 * [...] (nested table), "allow_unknown"}]. NULL on out of memory. */
cJSON *vp_json_fields_describe(const VpJsonField *fields, size_t n);

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, surrogates
 * or > U+10FFFF) at s, 0 if there is none. */
size_t vp_utf8_seq_len(const unsigned char *s, size_t n);

/* True when the 8 bytes at p hold no '"', no '\\' and no control byte
 * (< 0x20, NUL included): inside a JSON string, a run of them is copied or
 * skipped whole. Most of a sealed event's text is such runs (base64url and
 * hex), which the parser and the writer had walked one byte at a time. */
bool vp_json_plain8(const char *p);

/* Well-formed UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). NUL bytes
 * are valid UTF-8; callers that refuse them check separately. */
bool vp_json_utf8_valid(const char *s, size_t len);

/* Text fit to be kept in a header-like slot of the log (a command id, an actor):
 * well-formed UTF-8 of len bytes with no control character (C0, DEL, C1). A
 * JSON string can smuggle those in as \u escapes, a header as raw bytes. */
bool vp_utf8_printable(const char *s, size_t len);

/* Lower-cases, in place, the text of every VP_JSON_UUID member of obj that
 * fields[0..n) names, nested objects and arrays of objects too. Call it after
 * vp_json_check passed: an id then has one spelling, so "A1..." and "a1..."
 * find the same aggregate and hash to the same command. Members that are not
 * UUID text are left alone. */
void vp_json_uuids_lower(cJSON *obj, const VpJsonField *fields, size_t n);

/* Getters: absent, null and wrong-typed members all read as "not there". */
const char *vp_json_str(const cJSON *obj, const char *name);
bool vp_json_int(const cJSON *obj, const char *name, long long *out); /* integral, ±2^53 */
bool vp_json_bool(const cJSON *obj, const char *name, bool *out);
bool vp_json_number(const cJSON *obj, const char *name, double *out); /* finite */

/* Unformatted text of j, malloc'd (free()); NULL on out of memory or NULL j. */
char *vp_json_print(const cJSON *j);

/* Appends j's unformatted text to out, byte for byte what cJSON_PrintUnformatted
 * gives (the same escapes and number formats), without its intermediate
 * allocations. 0, or -1 (out->oom set) on a full buffer or a value cJSON
 * cannot print either (an invalid item, a raw member without text). */
int vp_json_write(VpBuf *out, const cJSON *j);
/* Appends s as a JSON string literal, escaped as cJSON escapes it. */
int vp_json_write_string(VpBuf *out, const char *s);
/* At most the bytes vp_json_write_string writes for the len bytes of s,
 * quotes included (a control character counted as \u00XX): for callers
 * that bound a body before writing it. */
size_t vp_json_string_len(const char *s, size_t len);

#endif
