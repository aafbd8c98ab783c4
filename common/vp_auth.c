/* Bearer authentication (see vp_auth.h). */
#include "vp_auth.h"

#include <string.h>
#include <strings.h>

#define SCHEME	   "Bearer"
#define SCHEME_LEN (sizeof(SCHEME) - 1)

int vp_auth_bearer(const VpJwtVerifier *v, const char *authorization, int64_t now_s,
		   VpClaims *claims, VpError *err)
{
	char why[64] = "";
	const char *token;
	size_t len;

	memset(claims, 0, sizeof(*claims));
	if (!authorization || !*authorization)
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "a Bearer token is required");
	if (strncasecmp(authorization, SCHEME, SCHEME_LEN) != 0 ||
	    (authorization[SCHEME_LEN] != ' ' && authorization[SCHEME_LEN] != '\0'))
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED,
				    "Authorization must be a Bearer token");
	token = authorization + SCHEME_LEN;
	while (*token == ' ')
		token++;
	len = strlen(token);
	while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	if (len == 0)
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "a Bearer token is required");
	if (vp_jwt_verify(v, token, len, now_s, claims, why, sizeof(why)) < 0)
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "invalid token: %s", why);
	return 0;
}
