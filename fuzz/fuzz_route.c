/* libFuzzer target: route matching (common/vp_http.c vp_http_route_match)
 * against every pattern both daemons route by: the writer's command tables
 * (cmd-writer/commands.c) and the reader's routes (query-reader/routes_table.c).
 * The input is a decoded request path as vp_http_request_init leaves it (no
 * NUL, under VP_HTTP_MAX_PATH bytes). A match captures one non-empty segment
 * per {name}, each without '/' and under VP_HTTP_MAX_PARAM_LEN bytes, and the
 * pattern with its captures put back is the path itself; no match leaves no
 * captures. At start: every route is reachable (its own path is not taken by
 * an earlier route of the same daemon and method). */
#include "fuzz.h"

#include "decide.h"
#include "routes.h"
#include "vp_http.h"

#define MAX_ROUTES 256

typedef struct Route {
	const char *pattern;
	const char *daemon;
	unsigned method; /* the reader's routes are all GET */
} Route;

static Route routes[MAX_ROUTES];
static size_t n_routes;

static int count_params(const char *pattern)
{
	int n = 0;

	for (const char *p = pattern; *p; p++)
		if (*p == '{')
			n++;
	return n;
}

/* The pattern with captures put back in order; false when it does not fit. */
static bool expand(const char *pattern, const VpHttpRequest *r, char *out, size_t cap)
{
	size_t used = 0;
	int param = 0;

	for (const char *p = pattern; *p;) {
		const char *piece = p;
		size_t piece_len = 1;
		if (*p == '{') {
			const char *close = strchr(p, '}');
			FUZZ_CHECK(close && param < r->n_params, "pattern %s", pattern);
			piece = r->params[param++];
			piece_len = strlen(piece);
			p = close + 1;
		} else {
			p++;
		}
		if (used + piece_len >= cap)
			return false;
		memcpy(out + used, piece, piece_len);
		used += piece_len;
	}
	out[used] = '\0';
	return true;
}

static void check_match(const Route *route, const char *path)
{
	char expanded[VP_HTTP_MAX_PATH + VP_HTTP_MAX_PARAM_LEN];
	VpHttpRequest r;

	memset(&r, 0, sizeof(r));
	snprintf(r.path, sizeof(r.path), "%s", path);
	r.n_params = 99;
	if (!vp_http_route_match(&r, route->pattern)) {
		FUZZ_CHECK(r.n_params == 0, "%s: no match, %d captures", route->pattern,
			   r.n_params);
		return;
	}
	FUZZ_CHECK(r.n_params == count_params(route->pattern), "%s: %d captures for \"%s\"",
		   route->pattern, r.n_params, path);
	for (int i = 0; i < r.n_params; i++) {
		size_t len = strnlen(r.params[i], VP_HTTP_MAX_PARAM_LEN);
		FUZZ_CHECK(len >= 1 && len < VP_HTTP_MAX_PARAM_LEN && !strchr(r.params[i], '/'),
			   "%s: capture %d of \"%s\" is \"%.*s\"", route->pattern, i, path,
			   (int)len, r.params[i]);
	}
	FUZZ_CHECK(expand(route->pattern, &r, expanded, sizeof(expanded)) &&
		       !strcmp(expanded, path),
		   "%s matched \"%s\" but gives back \"%s\"", route->pattern, path, expanded);
}

/* The first route of daemon and method matching path, as both daemons pick. */
static const Route *first_match(const char *daemon, unsigned method, const char *path)
{
	VpHttpRequest r;

	memset(&r, 0, sizeof(r));
	snprintf(r.path, sizeof(r.path), "%s", path);
	for (size_t i = 0; i < n_routes; i++)
		if (routes[i].daemon == daemon && routes[i].method == method &&
		    vp_http_route_match(&r, routes[i].pattern))
			return &routes[i];
	return NULL;
}

static void routes_once(void)
{
	static const char writer[] = "cmd-writer", reader[] = "query-reader";
	char path[VP_HTTP_MAX_PATH];

	if (n_routes)
		return;
	for (size_t t = 0; t < wr_n_command_tables; t++)
		for (size_t i = 0; i < *wr_command_tables[t].n; i++) {
			const WrCommand *c = &wr_command_tables[t].table[i];
			FUZZ_CHECK(n_routes < MAX_ROUTES, "too many routes");
			routes[n_routes++] = (Route){c->pattern, writer, (unsigned)c->method};
		}
	for (const RdRoute *const *group = rd_route_groups; *group; group++)
		for (const RdRoute *route = *group; route->pattern; route++) {
			FUZZ_CHECK(n_routes < MAX_ROUTES, "too many routes");
			routes[n_routes++] = (Route){route->pattern, reader, EVHTTP_REQ_GET};
		}
	/* Each route's own path, every {x} filled with a UUID, is routed to it:
	 * an earlier {x} does not shadow a later literal segment. */
	for (size_t i = 0; i < n_routes; i++) {
		size_t used = 0;
		for (const char *p = routes[i].pattern; *p && used + 40 < sizeof(path);) {
			if (*p == '{') {
				used += (size_t)snprintf(path + used, sizeof(path) - used, "%s",
							 "0190f1a2-7c3e-7a01-8e2f-0123456789ab");
				p = strchr(p, '}') + 1;
			} else {
				path[used++] = *p++;
			}
		}
		path[used] = '\0';
		const Route *first = first_match(routes[i].daemon, routes[i].method, path);
		FUZZ_CHECK(first && !strcmp(first->pattern, routes[i].pattern),
			   "%s %s: its path %s goes to %s", routes[i].daemon, routes[i].pattern,
			   path, first ? first->pattern : "nothing");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[VP_HTTP_MAX_PATH];

	routes_once();
	/* what parse_uri lets through: no NUL, shorter than VP_HTTP_MAX_PATH */
	if (size >= sizeof(path) || memchr(data, '\0', size))
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	for (size_t i = 0; i < n_routes; i++)
		check_match(&routes[i], path);
	return 0;
}
