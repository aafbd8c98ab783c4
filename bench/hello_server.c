/* The HTTP ceiling of make bench: a bare libevent evhttp server that answers
 * every request with a fixed JSON body, on `threads` loops sharing one port
 * through SO_REUSEPORT (as query-reader does). Nothing else: no auth, no
 * parsing, no database, so the gap to a daemon is what the daemon adds.
 *   hello_server PORT [THREADS] [BODY_BYTES] */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>

#define MAX_THREADS 16

typedef struct HelloLoop {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
} HelloLoop;

static char *reply_body;
static size_t reply_len;

static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add_reference(out, reply_body, reply_len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void *loop_main(void *arg)
{
	HelloLoop *loop = arg;
	event_base_dispatch(loop->base);
	return NULL;
}

/* One socket per loop on the same port: the kernel spreads connections. */
static int loop_open(HelloLoop *loop, int port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	loop->base = event_base_new();
	loop->http = loop->base ? evhttp_new(loop->base) : NULL;
	if (!loop->http)
		return -1;
	struct evconnlistener *listener = evconnlistener_new_bind(
		loop->base, NULL, NULL,
		LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE, 1024,
		(struct sockaddr *)&addr, sizeof(addr));
	if (!listener || !evhttp_bind_listener(loop->http, listener))
		return -1;
	evhttp_set_gencb(loop->http, on_request, NULL);
	return 0;
}

/* A body of the asked size: a JSON object padded with one string member. */
static int make_body(size_t bytes)
{
	const char *head = "{\"status\":\"ok\",\"pad\":\"";
	const char *tail = "\"}";
	size_t fixed = strlen(head) + strlen(tail);
	if (bytes < fixed)
		bytes = fixed;
	reply_body = malloc(bytes + 1);
	if (!reply_body)
		return -1;
	memcpy(reply_body, head, strlen(head));
	memset(reply_body + strlen(head), 'x', bytes - fixed);
	memcpy(reply_body + bytes - strlen(tail), tail, strlen(tail) + 1);
	reply_len = bytes;
	return 0;
}

int main(int argc, char **argv)
{
	static HelloLoop loops[MAX_THREADS];
	if (argc < 2) {
		fprintf(stderr, "usage: hello_server PORT [THREADS] [BODY_BYTES]\n");
		return 2;
	}
	int port = atoi(argv[1]);
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	long body = argc > 3 ? atol(argv[3]) : 16;
	if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS || body < 0 ||
	    body > 1 << 20) {
		fprintf(stderr, "hello_server: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0 || make_body((size_t)body) < 0)
		return 1;
	for (int i = 0; i < threads; i++)
		if (loop_open(&loops[i], port) < 0) {
			fprintf(stderr, "hello_server: cannot listen on port %d\n", port);
			return 1;
		}
	fprintf(stderr, "hello_server: port %d, %d threads, %ld-byte body\n", port, threads, body);
	for (int i = 1; i < threads; i++)
		pthread_create(&loops[i].thread, NULL, loop_main, &loops[i]);
	loop_main(&loops[0]);
	return 0;
}
