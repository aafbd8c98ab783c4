/* Structured JSON logging (see vp_log.h). One write(2) per line so lines from
 * several threads never interleave. */
#include "vp_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "vetpms";
static VpLogLevel log_min_level = VP_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void vp_log_init(const char *component, VpLogLevel min_level)
{
	log_component = component;
	log_min_level = min_level;
}

int vp_log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (name && strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

/* Appends s to line as JSON string content, escaping quotes, backslashes and
 * control bytes; stops before overflowing. */
static size_t append_escaped(char *line, size_t pos, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; s && *s && pos + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			line[pos++] = '\\';
			line[pos++] = (char)c;
		} else if (c < 0x20) {
			memcpy(line + pos, "\\u00", 4);
			line[pos + 4] = hex[c >> 4];
			line[pos + 5] = hex[c & 15];
			pos += 6;
		} else {
			line[pos++] = (char)c;
		}
	}
	return pos;
}

static size_t append_raw(char *line, size_t pos, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (pos + n >= cap)
		n = cap - pos - 1;
	memcpy(line + pos, s, n);
	return pos + n;
}

static void format_now(char *buf, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%06ldZ", ts.tv_nsec / 1000);
}

void vp_log_vwrite(VpLogLevel level, const char *request_id, const char *event, const char *fmt,
		   va_list ap)
{
	if (level < log_min_level)
		return;
	char message[2048];
	char ts[40];
	char line[4096];
	size_t pos = 0;
	const size_t cap = sizeof(line) - 2; /* room for "}\n" */

	vsnprintf(message, sizeof(message), fmt, ap);
	format_now(ts, sizeof(ts));
	pos = append_raw(line, pos, cap, "{\"ts\":\"");
	pos = append_raw(line, pos, cap, ts);
	pos = append_raw(line, pos, cap, "\",\"level\":\"");
	pos = append_raw(line, pos, cap, level_names[level]);
	pos = append_raw(line, pos, cap, "\",\"component\":\"");
	pos = append_escaped(line, pos, cap, log_component);
	pos = append_raw(line, pos, cap, "\",\"event\":\"");
	pos = append_escaped(line, pos, cap, event);
	if (request_id && *request_id) {
		pos = append_raw(line, pos, cap, "\",\"request_id\":\"");
		pos = append_escaped(line, pos, cap, request_id);
	}
	pos = append_raw(line, pos, cap, "\",\"msg\":\"");
	pos = append_escaped(line, pos, cap, message);
	pos = append_raw(line, pos, cap, "\"");
	line[pos++] = '}';
	line[pos++] = '\n';
	ssize_t ignored = write(STDERR_FILENO, line, pos);
	(void)ignored;
}

void vp_log_write(VpLogLevel level, const char *request_id, const char *event, const char *fmt,
		  ...)
{
	va_list ap;
	va_start(ap, fmt);
	vp_log_vwrite(level, request_id, event, fmt, ap);
	va_end(ap);
}

void vp_log_panic(const char *file, int line, const char *expr)
{
	vp_log_error(NULL, "assertion_failed", "%s:%d: expected %s", file, line, expr);
	abort();
}
