/* The dashboard page's static files under /app/ (docs/dashboard.md): the page
 * itself from VETPMS_READER_APP_DIR, Chart.js from Debian's libjs-chart.js
 * under /app/vendor/ (VETPMS_READER_VENDOR_DIR). No token needed: the files
 * hold no data, the page asks the API for it with the token it was given.
 *
 * Which files: a strict name check, not a path walk. A name is one segment
 * (no '/', so no sub-folders but vendor/), of [A-Za-z0-9._-], starting with a
 * letter or digit (no dot files, no ".."), with an extension of the type table;
 * it is opened with O_NOFOLLOW and must be a regular file, so a symlink placed
 * in the folder does not lead out of it and a folder is never listed. Whatever
 * fails is 404 in the contract's JSON body. GET and HEAD only (405 else).
 *
 * Every file leaves with a strict Content-Security-Policy (only this origin,
 * no inline script or style, no framing), nosniff, an ETag (size and mtime)
 * answered by 304, and Cache-Control: no-cache (revalidate each time: a new
 * deployment is seen at once, an unchanged file costs a 304). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reader.h"
#include "vp_log.h"

#define MAX_FILE_BYTES (4 * 1024 * 1024)

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
			  "img-src 'self'; connect-src 'self'; font-src 'self'; "
			  "object-src 'none'; base-uri 'none'; form-action 'none'; "
			  "frame-ancestors 'none'";

static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".png", "image/png"},
    {".svg", "image/svg+xml"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

const char *rd_static_content_type(const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
		size_t ext_len = strlen(content_types[i].ext);
		if (len > ext_len && strcmp(name + len - ext_len, content_types[i].ext) == 0)
			return content_types[i].type;
	}
	return NULL;
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool rd_static_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > RD_STATIC_MAX_NAME || !is_name_char(name[0]) || name[0] == '.' ||
	    name[0] == '-' || name[0] == '_' || strstr(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(name[i]))
			return false;
	return rd_static_content_type(name) != NULL;
}

RdStaticKind rd_static_map(const char *path, const char **name)
{
	*name = NULL;
	if (strcmp(path, "/app") == 0)
		return RD_STATIC_REDIRECT;
	if (strncmp(path, "/app/", 5) != 0)
		return RD_STATIC_NONE;
	const char *rest = path + 5;
	RdStaticKind kind = RD_STATIC_APP;
	if (*rest == '\0')
		rest = "index.html";
	else if (strncmp(rest, "vendor/", 7) == 0) {
		rest += 7;
		kind = RD_STATIC_VENDOR;
	}
	if (!rd_static_name_ok(rest))
		return RD_STATIC_BAD;
	*name = rest;
	return kind;
}

static void reply_not_found(VpHttpRequest *r)
{
	VpError err;
	vp_error_clear(&err);
	vp_error_set(&err, 404, VP_ERR_NOT_FOUND, "no such file");
	vp_http_reply_error(r, &err);
}

/* The file's bytes (malloc'd, *len) and its ETag; NULL when it is not a
 * regular file of the folder (missing, a symlink, a folder, too large). */
static char *read_file(const char *dir, const char *name, size_t *len, char *etag, size_t cap)
{
	char path[1024];
	struct stat st;
	char *data = NULL;
	size_t got = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return NULL;
	/* O_NONBLOCK: a FIFO given a page's name must not hang the loop in open();
	 * fstat then refuses it like any other non-regular file. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_BYTES)
		goto fail;
	data = malloc((size_t)st.st_size + 1);
	if (!data)
		goto fail;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail; /* shrank while read: answer 404 rather than half a file */
		got += (size_t)n;
	}
	close(fd);
	snprintf(etag, cap, "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
		     (unsigned long long)st.st_mtim.tv_nsec);
	*len = got;
	return data;
fail:
	free(data);
	close(fd);
	return NULL;
}

/* If-None-Match holds this ETag (alone, in a list, or weak) or "*". */
static bool not_modified(VpHttpRequest *r, const char *etag)
{
	const char *sent = vp_http_header(r, "If-None-Match");
	return sent && (strcmp(sent, "*") == 0 || strstr(sent, etag) != NULL);
}

static void add_security_headers(VpHttpRequest *r)
{
	vp_http_add_header(r, "Content-Security-Policy", csp);
	vp_http_add_header(r, "X-Content-Type-Options", "nosniff");
	vp_http_add_header(r, "X-Frame-Options", "DENY");
	vp_http_add_header(r, "Referrer-Policy", "no-referrer");
}

static void serve_file(VpHttpRequest *r, const char *dir, const char *name)
{
	char etag[64];
	size_t len = 0;
	char *data = read_file(dir, name, &len, etag, sizeof(etag));
	if (!data) {
		reply_not_found(r);
		return;
	}
	add_security_headers(r);
	vp_http_add_header(r, "ETag", etag);
	vp_http_add_header(r, "Cache-Control", "no-cache");
	if (not_modified(r, etag))
		vp_http_reply_text(r, 304, rd_static_content_type(name), NULL, 0);
	else
		vp_http_reply_text(r, 200, rd_static_content_type(name), data, len);
	free(data);
}

bool rd_static_route(VpHttpRequest *r, const RdConfig *cfg)
{
	const char *name;
	RdStaticKind kind = rd_static_map(r->path, &name);
	VpError err;

	if (kind == RD_STATIC_NONE)
		return false;
	vp_error_clear(&err);
	if (vp_http_require_method(r, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, &err) < 0) {
		vp_http_reply_error(r, &err);
		return true;
	}
	switch (kind) {
	case RD_STATIC_REDIRECT:
		/* Relative links of the page (app.js, app.css) need the slash. */
		vp_http_add_header(r, "Location", "/app/");
		vp_http_reply_text(r, 301, NULL, NULL, 0);
		break;
	case RD_STATIC_APP:
		serve_file(r, cfg->app_dir, name);
		break;
	case RD_STATIC_VENDOR:
		serve_file(r, cfg->vendor_dir, name);
		break;
	default:
		reply_not_found(r);
	}
	return true;
}
