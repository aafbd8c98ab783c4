/* The API error (see vp_error.h): filled by validation and decision code, turned
 * into the contract's JSON body by the HTTP layer. Text stored here is always
 * valid UTF-8 (invalid bytes become '?', truncation never splits a character), so
 * a field name echoed from a hostile body cannot make the error body invalid. */
#include "vp_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "vp_json.h"
#include "vp_time.h"

/* Copies src into dst (cap bytes, NUL included) as valid UTF-8: each invalid byte
 * becomes '?', and a character that does not fit whole is left out. */
static void copy_utf8(char *dst, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)(src ? src : "");
	size_t n = strlen((const char *)s);
	size_t out = 0;

	while (n > 0) {
		size_t len = vp_utf8_seq_len(s, n);
		if (len == 0) {
			if (out + 1 >= cap)
				break;
			dst[out++] = '?';
			s++;
			n--;
			continue;
		}
		if (out + len >= cap)
			break;
		memcpy(dst + out, s, len);
		out += len;
		s += len;
		n -= len;
	}
	dst[out] = '\0';
}

/* Details past n_details are never read, so they are left as they are:
 * zeroing all 32 of them (8 KiB) at each of the four clears of a command was
 * 34 k of a plain RegisterClient's 256 k instructions in the writer
 * (callgrind, docs/bench.md stop 20). */
void vp_error_clear(VpError *err)
{
	if (!err)
		return;
	err->status = 0;
	err->code = NULL;
	err->message[0] = '\0';
	err->n_details = 0;
	err->details_truncated = false;
	err->retry_after_s = 0;
}

int vp_error_set(VpError *err, int status, const char *code, const char *fmt, ...)
{
	char text[sizeof(err->message) * 2];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	err->status = status;
	err->code = code;
	copy_utf8(err->message, sizeof(err->message), text);
	return -1;
}

void vp_error_add_detail(VpError *err, const char *field, const char *fmt, ...)
{
	char text[sizeof(err->details[0].issue) * 2];
	VpErrorDetail *detail;
	va_list ap;

	if (!err)
		return;
	if (err->n_details >= VP_ERROR_MAX_DETAILS) {
		err->details_truncated = true;
		return;
	}
	detail = &err->details[err->n_details++];
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	copy_utf8(detail->field, sizeof(detail->field), field);
	copy_utf8(detail->issue, sizeof(detail->issue), text);
}

bool vp_error_finish_validation(VpError *err)
{
	if (!err)
		return false;
	if (err->status == 0 && (err->n_details > 0 || err->details_truncated))
		vp_error_set(err, 400, VP_ERR_VALIDATION, "Invalid input data");
	return err->status != 0;
}

static int add_detail_json(cJSON *details, const char *field, const char *issue)
{
	cJSON *item = cJSON_CreateObject();

	if (!item)
		return -1;
	if (!cJSON_AddItemToArray(details, item)) {
		cJSON_Delete(item);
		return -1;
	}
	if (!cJSON_AddStringToObject(item, "field", field) ||
	    !cJSON_AddStringToObject(item, "issue", issue))
		return -1;
	return 0;
}

char *vp_error_body_json(const VpError *err, const char *request_id, long long now_us)
{
	char timestamp[VP_TIME_RFC3339_MAX];
	char safe_request_id[65];
	cJSON *root = NULL;
	cJSON *body;
	cJSON *details;
	char *text = NULL;
	long long whole_seconds_us;

	/* The contract shows whole seconds; floor so that -1 us is the second before. */
	whole_seconds_us = now_us - now_us % 1000000;
	if (now_us % 1000000 < 0)
		whole_seconds_us -= 1000000;
	if (vp_time_format_rfc3339(whole_seconds_us, timestamp, sizeof(timestamp)) == 0)
		copy_utf8(timestamp, sizeof(timestamp), "1970-01-01T00:00:00Z");
	copy_utf8(safe_request_id, sizeof(safe_request_id), request_id);

	root = cJSON_CreateObject();
	if (!root)
		goto done;
	body = cJSON_AddObjectToObject(root, "error");
	if (!body)
		goto done;
	if (!cJSON_AddStringToObject(body, "code", err->code ? err->code : VP_ERR_INTERNAL) ||
	    !cJSON_AddStringToObject(body, "message", err->message))
		goto done;
	details = cJSON_AddArrayToObject(body, "details");
	if (!details)
		goto done;
	for (int i = 0; i < err->n_details && i < VP_ERROR_MAX_DETAILS; i++)
		if (add_detail_json(details, err->details[i].field, err->details[i].issue) < 0)
			goto done;
	if (err->details_truncated && add_detail_json(details, "*", "more errors omitted") < 0)
		goto done;
	if (!cJSON_AddStringToObject(body, "timestamp", timestamp) ||
	    !cJSON_AddStringToObject(body, "request_id", safe_request_id))
		goto done;
	text = cJSON_PrintUnformatted(root);
done:
	cJSON_Delete(root);
	return text;
}
