// Package feishu holds tokenwarden's adapters for the Feishu (飞书) and Lark open
// platforms: "feishu-user" keeps a user_access_token alive with Feishu's OAuth v2
// refresh grant, "feishu-tenant" re-mints an internal app's tenant_access_token.
//
// # Hosts
//
// Both adapters talk to https://open.feishu.cn unless Config.BaseURL names another base:
// https://open.larksuite.com for Lark (the international platform), or a loopback fake in
// tests. The base is a full https URL (http only for a loopback host); the fixed API
// paths are appended to it.
// Config.ClientID is the app's App ID ("cli_..."), the seed's client_secret its App
// Secret.
//
// # feishu-user: single-use refresh tokens
//
// POST {base}/open-apis/authen/v2/oauth/token with a JSON body
//
//	{"grant_type":"refresh_token","client_id":"cli_...","client_secret":"...","refresh_token":"...","scope":"..."}
//
// (scope only when Config.Scopes is set). A success is {"code":0,"access_token",
// "expires_in","refresh_token","refresh_token_expires_in","token_type","scope"}. Every
// refresh token works once: the answer carries its successor and the presented one is
// dead from then on. This is the trap of the Feishu bug report tokenwarden was built
// from: a "verify the setup" call refreshed with the freshly stored token, the rotated
// successor was never saved, and every later refresh failed with 20064/20073. Hence:
//
//   - Refresh is the only method that presents the refresh token, and it does so at most
//     once per call: a per-call transport refuses a second request, redirects are never
//     followed (a 307/308 would resend the body, refresh token and app secret included,
//     to the host the Location names), and nothing "checks" a credential by using it.
//     Feishu has no introspection endpoint, so the adapter does not implement
//     provider.RefreshTokenChecker.
//   - ValidateGrant and ValidateConfig send nothing over the network.
//
// A success without refresh_token (the app lacks the offline_access scope) still yields
// the access token; the spent refresh token is then all the store has, and the next
// refresh fails permanently, which is the truth: a human must re-authorize.
//
// # feishu-user: the first token (starter connect)
//
// The v2 authorization code flow with PKCE. The consent page is
//
//	GET {accounts}/open-apis/authen/v1/authorize?client_id=cli_...&response_type=code
//	    &redirect_uri=..&scope=..&state=..&code_challenge=..&code_challenge_method=S256
//
// where {accounts} is https://accounts.feishu.cn for the Feishu API host,
// https://accounts.larksuite.com for Lark's, and base_url itself for any other (a fake).
// scope must include offline_access, or no refresh token is issued. The browser returns
// to redirect_uri (registered in the app's security settings) with code and state, or
// with error=access_denied when the user declines. The code works once, for about five
// minutes, and Exchange presents it once at the token endpoint:
//
//	{"grant_type":"authorization_code","client_id":"cli_...","client_secret":"...",
//	 "code":"...","redirect_uri":"...","code_verifier":"..."}
//
// answered like a refresh. A refused code is a non-zero code (an invalid, expired, used
// or mismatched code, a failed PKCE check, a redirect_uri unlike the authorization
// request's): Permanent, as every unknown code is; ask for a new one.
//
// # feishu-tenant: re-mint inside the last 30 minutes
//
// POST {base}/open-apis/auth/v3/tenant_access_token/internal with {"app_id","app_secret"}
// answers {"code":0,"msg":"ok","tenant_access_token":"t-...","expire":7200}. There is no
// refresh token: the app secret mints a token whenever asked. While the current token has
// 30 minutes or more left, Feishu answers with that same token and its remaining
// lifetime; only inside the last 30 minutes does it issue a new one (the old one stays
// valid until it expires). A same-token answer is harmless (the TokenSet carries the
// unchanged token and its unchanged expiry), but it is not a renewal, so the adapter
// counts it (UnchangedRemints) and logs it. Set policy.refresh_margin below 30m (20m is
// a good value) so that the workflow's second attempt lands inside the window; with the
// scheduler's "a third of the lifetime" rule the first re-mint of a fresh 2-hour token
// happens with about 40 minutes left and returns the same token once per cycle.
//
// # Classification
//
// Feishu reports errors with a numeric "code" in a JSON body (v2 OAuth adds the RFC 6749
// "error" and "error_description"; v3 auth uses "msg"), sometimes with HTTP 200. Rules
// apply top to bottom, the first match wins; Code is the Feishu code as a decimal
// string, prefixed with "config_" for codes that mean "the app configuration is wrong".
//
//	condition                                       kind       Code                  why
//	----------------------------------------------  ---------  --------------------  ---------------------------------------------
//	no response (dial, reset, timeout, ctx)         Transient  network               nothing learned; try again
//	response body could not be read                 Transient  network               connection died mid-answer
//	HTTP 3xx                                        Permanent  http_3xx              base_url is wrong (redirects are not followed)
//	HTTP 5xx, 408, 429 (any code or none)           Transient  code or http_<n>      server-side or rate trouble; Retry-After and
//	                                                                                 x-ogw-ratelimit-reset honoured
//	code 20050 (server error), 99991400 (rate       Transient  20050, 99991400       Feishu itself says "later"
//	  limit), any status
//	code 20002 (client secret invalid), 99991543,   Permanent  config_<code>         app_id/app_secret or the app setup is wrong:
//	  10003 (invalid param), 10014 (app secret                                       fix config.client_id / seed.client_secret
//	  invalid)
//	code 20026 (refresh token invalid), 20037       Permanent  <code>                the grant is dead; a human must re-authorize
//	  (expired), 20064 (revoked), 20073 (already
//	  used), 20024, 20074, 20010 (no app access),
//	  20008 (user gone), 20066 (user status), any
//	  other non-zero code (app disabled, ...)
//	HTTP 400 without a readable code                Transient  http_400              most often a proxy answering for Feishu
//	other 4xx without a code                        Permanent  http_<n>              base_url or the app setup is wrong
//	2xx, code 0 but no access token, or not JSON    Transient  malformed_response    the body is not quoted: it may hold tokens
//
// # Secrets in errors
//
// Descriptions come from the provider and may echo what was sent. Before they reach a
// provider.Error the presented refresh token, the app secret and the current access token
// (raw, URL-escaped and JSON-escaped) become "[redacted]", as does any run of 20 or more
// token characters containing a digit or a capital letter; then the text is cut to
// MaxDescriptionLen runes.
//
// # Expiry
//
// AccessExpiresAt and RefreshExpiresAt are computed from expires_in / expire and
// refresh_token_expires_in relative to the injected clock.
package feishu
