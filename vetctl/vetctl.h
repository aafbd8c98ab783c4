/* vetctl: the ops CLI. One file per subcommand; each takes the arguments after
 * its name and returns the process exit code. */
#ifndef VETCTL_H
#define VETCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int vc_cmd_kafka(int argc, char **argv);
int vc_cmd_topics(int argc, char **argv);
int vc_cmd_token(int argc, char **argv);
int vc_cmd_catalog(int argc, char **argv);
int vc_cmd_events(int argc, char **argv);
int vc_cmd_analyst(int argc, char **argv);
int vc_cmd_deadletters(int argc, char **argv);
int vc_cmd_archive(int argc, char **argv);
int vc_cmd_tenant(int argc, char **argv);
int vc_cmd_keys(int argc, char **argv);
int vc_tenant_import(int argc, char **argv); /* tenant_import.c */

/* progress.c: progress of long work on stderr (at most once a second, and
 * once with final): count, rate, position and, with a total, time left. */
typedef struct VcProgress {
	const char *what;
	long long total; /* 0: unknown */
	int64_t started_us;
	int64_t last_us;
} VcProgress;
void vc_progress_start(VcProgress *pr, const char *what, long long total);
void vc_progress_report(VcProgress *pr, long long done, const char *position, bool final);

/* http_client.c: HTTP POST of JSON with a bearer token, on one of n_conns
 * keep-alive connections (one request in flight on each). status 0: no answer
 * (refused, reset, timed out). */
#define VC_HTTP_MAX_CONNS 8
typedef struct VcHttp VcHttp;
typedef struct VcHttpReply {
	int status;
	int retry_after_s;
	char *body; /* malloc'd, NUL-terminated; NULL without an answer */
	bool done;
} VcHttpReply;
VcHttp *vc_http_new(const char *url, const char *token, int timeout_s, int n_conns, char *why,
		   size_t why_cap);
void vc_http_free(VcHttp *h);
/* Blocking: sends on connection 0 and waits for the answer. */
int vc_http_post(VcHttp *h, const char *path, const char *json, size_t len, VcHttpReply *out);
/* Sends on connection slot (idle: its last request answered) and returns;
 * out->done once answered, which vc_http_wait (one turn of the event loop,
 * blocking until something happens) brings. out must live until then, or
 * until vc_http_free (which drops what is in flight without a callback). */
int vc_http_send(VcHttp *h, int slot, const char *path, const char *json, size_t len,
		 VcHttpReply *out);
int vc_http_wait(VcHttp *h);
void vc_http_reply_release(VcHttpReply *r);

#endif
