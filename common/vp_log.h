/* Structured logging: one JSON object per line on stderr, with the time, level,
 * component (daemon name), an event name, the request id when there is one and a
 * free-text message. Only daemon code logs; library code returns errors. */
#ifndef VP_LOG_H
#define VP_LOG_H

#include <stdarg.h>

typedef enum {
	VP_LOG_DEBUG = 0,
	VP_LOG_INFO,
	VP_LOG_WARN,
	VP_LOG_ERROR,
} VpLogLevel;

/* Set once at start; `component` must outlive the process (a literal). */
void vp_log_init(const char *component, VpLogLevel min_level);

/* "debug" | "info" | "warn" | "error" -> level; -1 when unknown. */
int vp_log_level_parse(const char *name);

/* `request_id` may be NULL. `event` is a short snake_case name ("listening"). */
void vp_log_write(VpLogLevel level, const char *request_id, const char *event, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));
void vp_log_vwrite(VpLogLevel level, const char *request_id, const char *event, const char *fmt,
		   va_list ap);

#define vp_log_debug(rid, ev, ...) vp_log_write(VP_LOG_DEBUG, (rid), (ev), __VA_ARGS__)
#define vp_log_info(rid, ev, ...)  vp_log_write(VP_LOG_INFO, (rid), (ev), __VA_ARGS__)
#define vp_log_warn(rid, ev, ...)  vp_log_write(VP_LOG_WARN, (rid), (ev), __VA_ARGS__)
#define vp_log_error(rid, ev, ...) vp_log_write(VP_LOG_ERROR, (rid), (ev), __VA_ARGS__)

/* Internal invariant: logs file:line and the broken expectation, then aborts.
 * Never used on input from outside. */
#define vp_assert(expr)                                                                    \
	do {                                                                               \
		if (!(expr))                                                               \
			vp_log_panic(__FILE__, __LINE__, #expr);                            \
	} while (0)
void vp_log_panic(const char *file, int line, const char *expr) __attribute__((noreturn));

#endif
