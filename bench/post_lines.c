/* The bulk loader of make bench: POSTs every line of FILE (one JSON body a
 * line) to PATH on 127.0.0.1:PORT, in file order, over CONNS keep-alive
 * connections each with one request in flight (closed loop), with the bearer
 * TOKEN. Used to pre-fill a tenant through the writer's HTTP API, which is the
 * only way commands get in.
 *   post_lines PORT PATH TOKEN FILE CONNS
 * With PATH "-", each line is "PATH<TAB>BODY" (a path of its own per request:
 * the visit cycle posts to /v1/medical-records/{id}/... of many records).
 * Prints one JSON object: requests, seconds, rate (all answers per second),
 * latency percentiles, the count of every status code (0 = no answer) and the
 * first non-2xx answer's body. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "vp_time.h"

#define MAX_CONNS 1024

typedef struct PostConn {
	struct evhttp_connection *conn;
	int64_t sent_us;
} PostConn;

static struct event_base *base;
static PostConn conns[MAX_CONNS];
static char auth[4096];
static const char *path;
static char **lines;
static char **paths; /* per line when PATH is "-", else NULL */
static size_t n_lines, next_line, answered;
static long statuses[600]; /* [0]: no answer (connection error) */
static char first_error[512];
static double *lat_ms;

static void send_next(PostConn *c);

static void on_answer(struct evhttp_request *req, void *arg)
{
	PostConn *c = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code < 0 || code >= 600)
		code = 0;
	lat_ms[answered++] = (double)(vp_time_mono_us() - c->sent_us) / 1000.0;
	statuses[code]++;
	if ((code < 200 || code > 299) && !first_error[0]) {
		struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
		size_t len = in ? evbuffer_get_length(in) : 0;
		if (len >= sizeof(first_error) - 16)
			len = sizeof(first_error) - 17;
		int at = snprintf(first_error, sizeof(first_error), "%d ", code);
		if (in)
			evbuffer_copyout(in, first_error + at, len);
		first_error[(size_t)at + len] = '\0';
	}
	if (answered == n_lines)
		event_base_loopexit(base, NULL);
	else
		send_next(c);
}

static void send_next(PostConn *c)
{
	if (next_line >= n_lines)
		return;
	const char *line_path = paths ? paths[next_line] : path;
	const char *body = lines[next_line++];
	struct evhttp_request *req = evhttp_request_new(on_answer, c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", "127.0.0.1");
	evhttp_add_header(h, "Authorization", auth);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	c->sent_us = vp_time_mono_us();
	evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, line_path);
}

static int read_lines(const char *file)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0, max = 0;
	ssize_t len;
	if (!f)
		return -1;
	while ((len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (n_lines == max) {
			max = max ? max * 2 : 1024;
			char **grown = realloc(lines, max * sizeof(*lines));
			if (!grown)
				return -1;
			lines = grown;
			if (paths) {
				char **grown_paths = realloc(paths, max * sizeof(*paths));
				if (!grown_paths)
					return -1;
				paths = grown_paths;
			}
		}
		if (paths) {
			char *tab = strchr(line, '\t');
			if (!tab || line[0] != '/') {
				fprintf(stderr, "post_lines: line %zu is not PATH<TAB>BODY\n", n_lines + 1);
				return -1;
			}
			*tab = '\0';
			if (!(paths[n_lines] = strdup(line)) || !(lines[n_lines] = strdup(tab + 1)))
				return -1;
		} else if (!(lines[n_lines] = strdup(line))) {
			return -1;
		}
		n_lines++;
	}
	free(line);
	fclose(f);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(int p)
{
	if (answered == 0)
		return 0;
	size_t i = answered * (size_t)p / 100;
	return lat_ms[i < answered ? i : answered - 1];
}

/* The first non-2xx body as a JSON string (quotes, backslashes and control
 * characters escaped). */
static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: post_lines PORT PATH TOKEN FILE CONNS\n");
		return 2;
	}
	int port = atoi(argv[1]), n_conns = atoi(argv[5]);
	path = argv[2];
	if (port < 1 || port > 65535 || n_conns < 1 || n_conns > MAX_CONNS || (path[0] != '/' && strcmp(path, "-") != 0)) {
		fprintf(stderr, "post_lines: bad arguments\n");
		return 2;
	}
	snprintf(auth, sizeof(auth), "Bearer %s", argv[3]);
	if (strcmp(path, "-") == 0 && !(paths = malloc(sizeof(*paths))))
		return 1;
	if (read_lines(argv[4]) < 0) {
		perror(argv[4]);
		return 1;
	}
	if (n_lines == 0) {
		printf("{\"requests\":0}\n");
		return 0;
	}
	lat_ms = calloc(n_lines, sizeof(*lat_ms));
	if (!lat_ms)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if ((size_t)n_conns > n_lines)
		n_conns = (int)n_lines;
	int64_t t0 = vp_time_mono_us();
	for (int i = 0; i < n_conns; i++) {
		conns[i].conn = evhttp_connection_base_new(base, NULL, "127.0.0.1", (unsigned short)port);
		send_next(&conns[i]);
	}
	event_base_dispatch(base);
	double seconds = (double)(vp_time_mono_us() - t0) / 1e6;
	qsort(lat_ms, answered, sizeof(double), cmp_double);
	printf("{\"requests\":%zu,\"seconds\":%.3f,\"rate\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
	       "\"max_ms\":%.2f,\"status\":{",
	       answered, seconds, (double)answered / seconds, pct(50), pct(99),
	       lat_ms[answered - 1]);
	bool first = true;
	for (int code = 0; code < 600; code++) {
		if (statuses[code]) {
			printf("%s\"%d\":%ld", first ? "" : ",", code, statuses[code]);
			first = false;
		}
	}
	printf("},\"first_error\":");
	print_json_string(first_error);
	printf("}\n");
	for (int i = 0; i < n_conns; i++)
		evhttp_connection_free(conns[i].conn);
	event_base_free(base);
	for (size_t i = 0; i < n_lines; i++) {
		free(lines[i]);
		if (paths)
			free(paths[i]);
	}
	free(lines);
	free(paths);
	free(lat_ms);
	return 0;
}
