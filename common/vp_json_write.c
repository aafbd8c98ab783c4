/* JSON text of a cJSON tree appended straight to a VpBuf (see vp_json.h). It
 * prints what cJSON_PrintUnformatted prints, byte for byte (tests/unit/
 * test_json_write.c holds it to that), but into one reusable buffer: cJSON's
 * printer allocates and grows a buffer per call, and a caller that wants the
 * text inside a larger document (the event envelope) would otherwise build
 * and print a second tree. */
#include "vp_json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

/* Characters cJSON escapes: '"', '\\' and every byte below 0x20. Everything
 * else, UTF-8 included, is copied as it is. */
static bool needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

static int write_escape(VpBuf *out, unsigned char c)
{
	char seq[7] = {'\\', 0};
	switch (c) {
	case '"':
	case '\\':
		seq[1] = (char)c;
		break;
	case '\b':
		seq[1] = 'b';
		break;
	case '\f':
		seq[1] = 'f';
		break;
	case '\n':
		seq[1] = 'n';
		break;
	case '\r':
		seq[1] = 'r';
		break;
	case '\t':
		seq[1] = 't';
		break;
	default: /* \u00XX, lower-case hex as cJSON writes it */
		memcpy(seq, "\\u00", 4);
		seq[4] = hex_digits[c >> 4];
		seq[5] = hex_digits[c & 0xf];
		return vp_buf_append(out, seq, 6);
	}
	return vp_buf_append(out, seq, 2);
}

int vp_json_write_string(VpBuf *out, const char *s)
{
	const char *p = s ? s : "", *end = p + strlen(p);
	if (vp_buf_append(out, "\"", 1) < 0)
		return -1;
	while (p < end) {
		const char *run = p;
		while (end - p >= 8 && vp_json_plain8(p))
			p += 8;
		while (p < end && !needs_escape((unsigned char)*p))
			p++;
		if (p > run && vp_buf_append(out, run, (size_t)(p - run)) < 0)
			return -1;
		if (p < end && write_escape(out, (unsigned char)*p++) < 0)
			return -1;
	}
	return vp_buf_append(out, "\"", 1);
}

size_t vp_json_string_len(const char *s, size_t len)
{
	size_t n = len + 2;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		n += c == '"' || c == '\\' ? 1 : c < 0x20 ? 5 : 0;
	}
	return n;
}

/* cJSON's own rule (print_number in cJSON.c 1.7.15, the version we link):
 * null for NaN and the infinities, else 15 significant digits unless they do
 * not read back as (nearly) the same double, then 17. Later cJSON versions
 * print integral values with %d, which differs only for -0. */
static int write_number(VpBuf *out, const cJSON *item)
{
	char text[32];
	double d = item->valuedouble;
	if (isnan(d) || isinf(d))
		return vp_buf_append(out, "null", 4);
	snprintf(text, sizeof(text), "%1.15g", d);
	double back = strtod(text, NULL);
	double larger = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
	if (!(fabs(back - d) <= larger * DBL_EPSILON))
		snprintf(text, sizeof(text), "%1.17g", d);
	return vp_buf_puts(out, text);
}

/* [a,b] or {"k":v,...}: a container's children in order. */
static int write_children(VpBuf *out, const cJSON *container, bool object)
{
	if (vp_buf_append(out, object ? "{" : "[", 1) < 0)
		return -1;
	for (const cJSON *child = container->child; child; child = child->next) {
		if (child != container->child && vp_buf_append(out, ",", 1) < 0)
			return -1;
		if (object && (vp_json_write_string(out, child->string) < 0 ||
			       vp_buf_append(out, ":", 1) < 0))
			return -1;
		if (vp_json_write(out, child) < 0)
			return -1;
	}
	return vp_buf_append(out, object ? "}" : "]", 1);
}

int vp_json_write(VpBuf *out, const cJSON *j)
{
	if (!j) {
		out->oom = true;
		return -1;
	}
	switch (j->type & 0xFF) {
	case cJSON_NULL:
		return vp_buf_append(out, "null", 4);
	case cJSON_False:
		return vp_buf_append(out, "false", 5);
	case cJSON_True:
		return vp_buf_append(out, "true", 4);
	case cJSON_Number:
		return write_number(out, j);
	case cJSON_String:
		return vp_json_write_string(out, j->valuestring);
	case cJSON_Raw:
		if (j->valuestring)
			return vp_buf_puts(out, j->valuestring);
		break;
	case cJSON_Array:
		return write_children(out, j, false);
	case cJSON_Object:
		return write_children(out, j, true);
	default:
		break;
	}
	out->oom = true; /* cJSON_Invalid or a raw without text: cJSON fails too */
	return -1;
}
