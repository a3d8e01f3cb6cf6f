// Package zalo is tokenwarden's adapter for Zalo OAuth v4: Official Account tokens
// ("zalo-oa", NewOA) and user tokens from Zalo Login / Social API ("zalo-user", NewUser).
// It implements provider.Provider, and ExchangeCode turns a fresh authorization code
// into the first token set of a credential.
//
// # Wire format
//
//	zalo-oa    POST {base_url}/v4/oa/access_token
//	zalo-user  POST {base_url}/v4/access_token
//
// base_url defaults to https://oauth.zaloapp.com. The body is form-encoded:
//
//	app_id=<config.client_id>&grant_type=refresh_token&refresh_token=<token>
//	app_id=<config.client_id>&grant_type=authorization_code&code=<code>[&code_verifier=<v>]
//
// and the app secret (the grant's client_secret) travels in the secret_key HTTP header,
// never in the body and never as HTTP Basic. A success is
//
//	{"access_token":"...","refresh_token":"...","expires_in":90000}
//
// where expires_in (25 hours) may also arrive as a JSON string ("90000"), as may
// refresh_token_expires_in when present. Zalo answers failures with HTTP 200 too:
//
//	{"error":-14014,"error_name":"Invalid refresh token","error_description":"..."}
//
// so an answer is a failure when "error" is present and not 0, or when access_token is
// missing or empty, whatever the status.
//
// # Authorization (starter connect)
//
//	zalo-oa    GET {base_url}/v4/oa/permission?app_id=..&redirect_uri=..&code_challenge=..&state=..
//	zalo-user  GET {base_url}/v4/permission?app_id=..&redirect_uri=..&code_challenge=..&state=..
//
// is the permission page (AuthCodeURL) an OA admin or a user approves. code_challenge is
// base64url(sha256(code_verifier)) without padding, the only method Zalo knows, so no
// code_challenge_method is sent; the verifier is 43 characters of [A-Za-z0-9_-].
// redirect_uri must be the callback URL registered for the app; Zalo sends the browser
// there with code and state (and oa_id for an OA), and the code is exchanged once
// (Exchange, ExchangeCode) with its code_verifier and the app secret in the secret_key
// header. The exchange carries no redirect_uri. A code lives about ten minutes.
//
// # Configuration
//
// client_id is the Zalo app id (decimal digits, required); base_url optionally replaces
// the host (tests point it at loopback; a path prefix is kept). token_url,
// introspection_url, auth_style, scopes, operator_id and parent are refused rather than
// ignored (authorize_url and grant_type too): the endpoint is fixed by the provider name, and a token_url that was silently
// ignored would send the app secret somewhere its author did not expect. The grant needs
// refresh_token and client_secret (the app secret). redirect_uri, when set, is the app's
// registered callback URL, for `starter connect` (https, or http on loopback).
//
// # Exactly one presentation per Refresh
//
// Zalo refresh tokens are single-use and rotate: every success returns a new one and
// the presented one is dead. So one Refresh (and one ExchangeCode, whose code is also
// single-use) sends the secret over the wire at most once: the request has no GetBody,
// redirects are not followed (a 3xx is reported as a Permanent configuration error, as
// following a 307/308 would re-send the form to another host), and the per-call
// transport refuses a second request outright.
//
// # Expiry
//
// AccessExpiresAt is now + expires_in, on the injected clock; when expires_in is
// missing or unusable it is zero and the workflow's assumed_lifetime applies.
// When a new refresh token is issued, RefreshExpiresAt is now + refresh_token_expires_in
// if present, else now + DefaultRefreshLifetime (90 days: Zalo documents about three
// months for OA refresh tokens). A success without a refresh_token (or one echoing the
// presented value) yields TokenSet.RefreshToken == "": the access token is still worth
// storing, and the next Refresh will learn from Zalo whether the old token survived.
//
// # Classification
//
// Rules apply top to bottom; the first match wins. "error" is the body's error member
// (a number, or a numeric string); Code is that number as text ("-14014") or a tag of
// ours.
//
//	condition                                      kind       Code                 why
//	---------------------------------------------  ---------  -------------------  ------------------------------------------
//	no response (dial, reset, timeout, ctx)        Transient  network              nothing learned; try again
//	body could not be read                         Transient  network              connection died mid-answer
//	HTTP 3xx                                       Permanent  http_3xx             base_url is wrong; redirects not followed
//	HTTP 5xx, 408, 429                             Transient  error or http_<n>    server or rate trouble; Retry-After honoured
//	error -14014 (refresh token invalid, expired   Permanent  -14014               the grant is dead; a human must re-authorize
//	  or already used)
//	error -14005 (authorization code invalid,      Permanent  -14005               ask for a new code
//	  expired or used)
//	error -14002 (invalid app id), -14004          Permanent  -14002, -14004       the app is misconfigured or disabled
//	  (invalid secret key)
//	error -14018 (invalid grant type)              Permanent  -14018               our request is wrong; resending won't help
//	error -32 (request limit exceeded)             Transient  -32                  rate limit
//	other error < 0 whose error_name (or textual   Permanent  error                Zalo names the grant or the app as invalid
//	  error) mentions "refresh_token", "refresh
//	  token", "invalid" or "expired"
//	textual error server_error,                    Transient  error                OAuth2-style "later"
//	  temporarily_unavailable, slow_down
//	any other non-zero error                       Transient  error                unknown: retrying a live credential is
//	                                                                               cheaper than parking it for a human
//	HTTP 400 without a Zalo error                  Transient  http_400             Zalo itself answers 200; a bare 400 is most
//	                                                                               likely a proxy
//	other HTTP 4xx without a Zalo error            Permanent  http_<n>             base_url or the app setup is wrong
//	2xx without access_token, not JSON, or empty   Transient  malformed_response   never yields a TokenSet; the body is not
//	                                                                               quoted (it may hold fresh tokens)
//
// Sources for the numbers: Zalo does not publish one table for the token endpoint;
// -14002, -14004, -14005, -14014 and -14018 are the codes integrators report from its
// answers (-14014 "Invalid refresh token" for a used, expired or unknown refresh token,
// the case the Zalo OA cron setup this replaces documents). -32 is believed to be the
// request-limit code of Zalo's API-wide error table but was not confirmed for the token
// endpoint; treating it as Transient is the safe side either way. Unknown codes fall
// back to Zalo's own words, and otherwise to Transient. Some integrators report an empty HTTP 200 body for an already
// used refresh token; that is indistinguishable from a broken proxy and stays Transient
// (malformed_response), so it is retried with backoff rather than parked.
//
// # Secrets in errors
//
// Descriptions (error_name and error_description) and network error texts are
// scrubbed before they reach a provider.Error: the presented refresh token, code, code
// verifier and app secret (raw, form-, path- and JSON-escaped) become "[redacted]", as
// does any run of 20 or more token characters [A-Za-z0-9._~+/=-] containing a digit or
// a capital letter. Scrubbing happens before truncation to MaxDescriptionLen runes.
package zalo
