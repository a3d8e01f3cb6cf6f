// Package zogo is tokenwarden's adapter for the Zogo API (zogo.vn): a Laravel
// Passport-style login and refresh with JSON bodies.
//
// # Wire protocol
//
// Both calls are one JSON POST with Accept and Content-Type application/json:
//
//	POST {base_url}/api/v2/login          {"username","password","client_id","client_secret"}
//	POST {base_url}/api/v2/refresh_token  {"refresh_token","client_id","client_secret"}
//
// client_id is sent as a JSON number when config.client_id is a decimal integer (the
// documentation's `"client_id": 1`), as a string otherwise. base_url defaults to
// DefaultBaseURL (the sandbox); production is ProductionBaseURL. A successful answer is
//
//	{"code":200,"status":"success","token_type":"Bearer","expires_in":1296000,
//	 "access_token":"eyJ0eXAiOiJKV1Qi...","refresh_token":"def50200..."}
//
// (the tokens are also accepted one level down, under "data"). expires_in is seconds;
// without it AccessExpiresAt stays zero and the workflow assumes policy.assumed_lifetime
// (Zogo documents access tokens of "about 100 years"). A refresh that answers a new
// refresh_token rotates it; the old one must be considered spent.
//
// Errors look like {"code":401,"status":"error","data":{"error":"Unauthenticated."}}. The
// envelope's "code" counts as the status when the HTTP status is 2xx but the body says
// "status":"error" or carries a code of 400 or more.
//
// # Refresh, and logging in again
//
// Refresh presents grant.RefreshToken once. If Zogo rejects it (refresh_token_rejected
// below) and the grant holds a username and password, the adapter logs in once instead
// and returns the login's tokens (a new refresh token included); the credential stays
// alive without a human. A grant with a login and no refresh token logs in directly. So
// one call presents the refresh token at most once and the password at most once; the
// client secret goes with each of the (at most two) requests, as it is not single-use.
//
// Note that a login fallback that fails transiently leaves the rejected refresh token
// stored: the next attempt presents it again (it is rejected again, which costs one
// round trip) before logging in.
//
// # Classification
//
// First match wins; "status" is the HTTP status or the envelope code as above.
//
//	condition                                  kind       Code                     fallback to login
//	-----------------------------------------  ---------  -----------------------  -----------------
//	no response, body unreadable               Transient  network                  no
//	status 5xx, 408, 429                       Transient  http_<n>                 no (Retry-After kept)
//	status 3xx (redirects are not followed)    Permanent  http_<n>                 no: base_url is wrong
//	refresh: status 400, 401, 403, 422         Permanent  refresh_token_rejected   yes, if a password is stored
//	login:   status 400, 401, 403, 422         Permanent  login_rejected           -
//	other 4xx (404, 405, 410, ...)             Permanent  http_<n>                 no: base_url is wrong
//	2xx without a usable token (not JSON, no   Transient  malformed_response       no
//	  access_token)
//	grant has neither refresh token nor login  Permanent  missing_grant            -
//	config invalid                             Permanent  invalid_config           -
//
// A login_rejected error means the stored username, password or client secret is wrong:
// a human must reseed. Descriptions come from the body ("data.error", "message", ...),
// scrubbed of the refresh token, password, client secret and anything token-shaped; the
// body of a 2xx answer is never quoted, since it may hold fresh tokens.
package zogo
