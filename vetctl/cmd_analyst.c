/* vetctl analyst: PostgreSQL logins for analysts that can only ever read the
 * tenants granted to them (schema/migrations/010_analyst_scope.sql). A grant
 * is membership of the NOLOGIN role vetpms_tenant_<32 hex>; row security and
 * the analysts' views look it up for the session's login, which the session
 * cannot change. The login is a member of vetpms_scoped_analyst, which holds
 * the analysts' privileges (never of the login vetpms_analyst: SET ROLE to it
 * would let the analyst change its password). Runs as a superuser or
 * CREATEROLE admin (--dsn). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "vetctl.h"
#include "vp_config.h"
#include "vp_pg.h"
#include "vp_uuid.h"

typedef struct AnalystOptions {
	char *tenant;
	char *login;
	char *dsn;
} AnalystOptions;

static const char usage[] =
	"usage: vetctl analyst create --tenant UUID --login NAME [--dsn DSN]\n"
	"       vetctl analyst grant  --tenant UUID --login NAME [--dsn DSN]\n"
	"       vetctl analyst revoke --tenant UUID --login NAME [--dsn DSN]\n"
	"  create: a new login, member of vetpms_scoped_analyst, that reads tenant UUID only;\n"
	"          its password is printed on stdout (once; store it)\n"
	"  grant:  one more tenant for an existing analyst login; revoke: one fewer\n"
	"  --dsn (VETPMS_PG_ADMIN_DSN): a superuser or CREATEROLE connection\n";

/* Our own names stay ours: a login is lower-case letters, digits and '_',
 * and none of the roles the platform itself relies on. */
static bool login_name_ok(const char *login)
{
	size_t len = strlen(login);
	if (len == 0 || len > 63 || !islower((unsigned char)login[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)login[i];
		if (!islower(c) && !isdigit(c) && c != '_')
			return false;
	}
	static const char *const reserved[] = {"vetpms_analyst", "vetpms_reader",
					       "vetpms_projector", "vetpms_all_tenants",
					       "vetpms_scoped_analyst",
					       "postgres"};
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (!strcmp(login, reserved[i]))
			return false;
	return strncmp(login, "vetpms_tenant_", 14) != 0;
}

/* vetpms_tenant_ + the uuid's 32 hex digits, lower case. */
static void tenant_role_name(const VpUuid *tenant, char out[64])
{
	char text[37];
	vp_uuid_format(tenant, text);
	size_t used = (size_t)snprintf(out, 64, "vetpms_tenant_");
	for (const char *p = text; *p; p++)
		if (*p != '-')
			out[used++] = (char)tolower((unsigned char)*p);
	out[used] = '\0';
}

/* 1 when the login exists and is a member of vetpms_scoped_analyst, 0 when not. */
static int is_analyst_login(PGconn *conn, const char *login, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[] = {login};
	if (vp_pg_exec(conn,
		       "SELECT 1 FROM pg_roles u WHERE u.rolname = $1 AND u.rolcanlogin"
		       " AND pg_has_role(u.oid, 'vetpms_scoped_analyst', 'MEMBER')",
		       1, params, &res, why, why_cap) < 0)
		return -1;
	int found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}

static const char create_tenant_role[] =
	"SELECT format('CREATE ROLE %I NOLOGIN', $1::text)"
	" WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1::text)";

/* INHERIT: the login uses the group's table privileges without SET ROLE
 * (and with it gains nothing: grants are looked up for the login). */
static const char create_login[] =
	"SELECT format('CREATE ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE"
	" NOREPLICATION NOBYPASSRLS PASSWORD %L IN ROLE vetpms_scoped_analyst', $1::text, $2::text)";

/* The login's default tenant, so that a one-tenant analyst needs no SET.
 * Only a default: setting another tenant shows nothing of it. */
static const char default_tenant[] =
	"SELECT format('ALTER ROLE %I SET vetpms.tenant_id = %L', $1::text, $2::text)";

static int run(PGconn *conn, const char *action, const AnalystOptions *o, const VpUuid *tenant,
	       char *why, size_t why_cap)
{
	char role[64], tenant_text[37], password[64];
	char *hashed = NULL;
	int rc = -1;
	tenant_role_name(tenant, role);
	vp_uuid_format(tenant, tenant_text);
	if (vp_pg_exec(conn, "BEGIN", 0, NULL, NULL, why, why_cap) < 0)
		return -1;
	const char *role_param[] = {role};
	if (strcmp(action, "revoke") != 0 &&
	    vp_pg_exec_built(conn, create_tenant_role, 1, role_param, why, why_cap) < 0)
		goto done;
	if (!strcmp(action, "create")) {
		unsigned char random[24];
		randombytes_buf(random, sizeof(random));
		sodium_bin2base64(password, sizeof(password), random, sizeof(random),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		/* Hashed here (SCRAM, the server's password_encryption): the
		 * password itself never reaches the server's statement log. */
		hashed = PQencryptPasswordConn(conn, password, o->login, NULL);
		if (!hashed) {
			snprintf(why, why_cap, "cannot hash the password: %s", PQerrorMessage(conn));
			goto done;
		}
		const char *login_params[] = {o->login, hashed};
		const char *default_params[] = {o->login, tenant_text};
		if (vp_pg_exec_built(conn, create_login, 2, login_params, why, why_cap) < 0 ||
		    vp_pg_exec_built(conn, default_tenant, 2, default_params, why, why_cap) < 0)
			goto done;
	} else {
		int found = is_analyst_login(conn, o->login, why, why_cap);
		if (found < 0)
			goto done;
		if (!found) {
			snprintf(why, why_cap, "no analyst login %s (a login member of vetpms_scoped_analyst)",
				 o->login);
			goto done;
		}
	}
	const char *member_params[] = {role, o->login};
	if (vp_pg_exec_built(conn,
		       strcmp(action, "revoke") ? "SELECT format('GRANT %I TO %I', $1::text, $2::text)"
						: "SELECT format('REVOKE %I FROM %I', $1::text, $2::text)"
						  " WHERE EXISTS (SELECT 1 FROM pg_roles"
						  " WHERE rolname = $1::text)",
		       2, member_params, why, why_cap) < 0 ||
	    vp_pg_exec(conn, "COMMIT", 0, NULL, NULL, why, why_cap) < 0)
		goto done;
	if (!strcmp(action, "create"))
		printf("%s\n", password);
	fprintf(stderr, "vetctl: %s %s tenant %s (role %s)\n", o->login,
		strcmp(action, "revoke") ? "reads" : "no longer reads", tenant_text, role);
	rc = 0;
done:
	if (rc < 0) {
		char ignored[64];
		vp_pg_exec(conn, "ROLLBACK", 0, NULL, NULL, ignored, sizeof(ignored));
	}
	sodium_memzero(password, sizeof(password));
	PQfreemem(hashed);
	return rc;
}

int vc_cmd_analyst(int argc, char **argv)
{
	AnalystOptions o = {0};
	char why[512] = "";
	PGconn *conn = NULL;
	int rc = 1;
	const VpConfigItem items[] = {
		VP_CF_STR("tenant", NULL, &o.tenant, "", "tenant id the login reads"),
		VP_CF_STR("login", NULL, &o.login, "", "the analyst's PostgreSQL login"),
		VP_CF_STR("dsn", "VETPMS_PG_ADMIN_DSN", &o.dsn, "",
			  "libpq connection string of a superuser or CREATEROLE admin"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	if (argc < 2 || !strcmp(argv[1], "--help") ||
	    (strcmp(argv[1], "create") && strcmp(argv[1], "grant") && strcmp(argv[1], "revoke"))) {
		fputs(usage, argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	const char *action = argv[1];
	int loaded = vp_config_load(items, n, argc - 1, argv + 1, "vetctl analyst", NULL, why,
				    sizeof(why));
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "vetctl: %s\n", why);
		rc = loaded < 0 ? 2 : 0;
		goto done;
	}
	VpUuid tenant;
	if (vp_uuid_parse(o.tenant, strlen(o.tenant), &tenant) < 0) {
		fprintf(stderr, "vetctl: --tenant must be a UUID\n%s", usage);
		rc = 2;
		goto done;
	}
	if (!login_name_ok(o.login)) {
		fprintf(stderr, "vetctl: --login must be lower-case letters, digits and '_' (at most 63),"
				" not a platform role nor vetpms_tenant_*\n");
		rc = 2;
		goto done;
	}
	if (!*o.dsn) {
		fprintf(stderr, "vetctl: --dsn or VETPMS_PG_ADMIN_DSN is required\n");
		rc = 2;
		goto done;
	}
	conn = vp_pg_connect(o.dsn, "vetctl", why, sizeof(why));
	if (!conn || run(conn, action, &o, &tenant, why, sizeof(why)) < 0) {
		fprintf(stderr, "vetctl: analyst %s: %s\n", action, why);
		goto done;
	}
	rc = 0;
done:
	if (conn)
		PQfinish(conn);
	vp_config_free(items, n);
	return rc;
}
