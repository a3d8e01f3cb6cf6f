// Package oauth2provider is tokenwarden's generic adapter for the RFC 6749 section 6
// refresh_token grant. It implements provider.Provider on top of golang.org/x/oauth2
// (and provider.RefreshTokenChecker with RFC 7662 introspection, see below) and adds the
// three things x/oauth2 leaves to its callers: presenting the refresh token
// exactly once, classifying every failure as Transient or Permanent, and keeping secrets
// out of error text.
//
// # Exactly one presentation per Refresh
//
// With rotating refresh tokens (RFC 9700 section 4.14.2) a token is single-use: a second
// presentation of the same value looks like theft and makes the provider revoke the whole
// token family. So one Refresh call sends the refresh token over the wire at most once:
//
//   - Auth style "" maps to HTTP Basic (AuthStyleInHeader), never to x/oauth2's
//     AuthStyleAutoDetect. AutoDetect tries Basic, and on any failure silently repeats the
//     request with credentials in the body, which would present the refresh token twice.
//     Basic is the right default because RFC 6749 section 2.3.1 says servers MUST support
//     it for clients that were issued a password.
//   - Redirects are not followed. A 307/308 would re-send the form (refresh token
//     included) to whatever host the Location names; a 3xx is instead reported as a
//     Permanent configuration error.
//   - The per-call transport refuses a second request outright, so even a future x/oauth2
//     that retried internally could not present the token twice. (net/http itself only
//     retries a POST when nothing was written to the wire, which presents nothing.)
//
// # The first grant: authorization code with PKCE (starter connect)
//
// With config.authorize_url the adapter is a provider.Authorizer: AuthCodeURL builds
// the RFC 6749 section 4.1.1 request (response_type=code, client_id, redirect_uri,
// scope, state) with an S256 code_challenge (RFC 7636, which RFC 9700 section 2.1.1
// asks of every client); Exchange presents the code once at token_url with its
// code_verifier and redirect_uri, through the same single-shot client and
// classification as Refresh (a refused code is invalid_grant: Permanent). authorize_url
// obeys the https rule, since the user types a password there; it receives no secret.
//
// # Client credentials (grant_type "client_credentials")
//
// RFC 6749 section 4.4: there is no user and no refresh token. The seed is the client
// secret alone; every Refresh mints a new access token with one request (scope from
// config.scopes), on the schedule the access token's lifetime sets, as feishu-tenant
// re-mints. RefreshTokenActive reports "unsupported" (an interrupted mint spent
// nothing), and there is nothing to connect in a browser.
//
// # Classification
//
// Rules are applied top to bottom; the first match wins. "code" is the RFC 6749 section
// 5.2 error parameter, read from JSON or form-encoded bodies, including 200 responses
// that carry one (some servers answer errors with 200).
//
//	condition                                   kind       Code                 why
//	------------------------------------------  ---------  -------------------  -----------------------------------------------
//	no response (dial, reset, timeout, ctx)     Transient  network              nothing learned about the grant; try again
//	response body could not be read             Transient  network              connection died mid-answer
//	HTTP 5xx, 408, 429 (any code or none)       Transient  code or http_<n>     server-side or rate trouble; Retry-After honoured
//	code temporarily_unavailable, server_error, Transient  code                 the server itself says "later"
//	  slow_down (any status)
//	code invalid_grant, invalid_client,         Permanent  code                 the grant or client is rejected; retrying the
//	  unauthorized_client, invalid_scope,                                       same request cannot change the answer
//	  unsupported_grant_type
//	code invalid_request                        Permanent  code                 the request we build is malformed (or lacks a
//	                                                                            parameter this provider insists on); resending
//	                                                                            the same bytes will not fix itself, and a human
//	                                                                            must fix the configuration
//	any other code (e.g. access_denied,         Permanent  code                 a server that chose a 4xx (or 200) plus an
//	  consent_required, vendor codes)                                           explicit error code rejected the request
//	HTTP 400 without a readable code            Transient  http_400             RFC 6749 servers always put a code in a 400; an
//	                                                                            unreadable 400 is most often a proxy or load
//	                                                                            balancer answering for it, and parking a live
//	                                                                            credential (a human must re-consent) costs far
//	                                                                            more than retrying a dead one
//	HTTP 401, 403 without a code                Permanent  http_401, http_403   bad client credentials or a blocked client
//	HTTP 3xx                                    Permanent  http_3xx             token_url is wrong (redirects are not followed)
//	other 4xx without a code (404, 405, 410...) Permanent  http_<n>             token_url or the provider setup is wrong
//	2xx that is not a token response (not JSON, Transient  malformed_response   never yields a TokenSet; the body is not quoted
//	  no access_token)                                                          in the error because it may hold fresh tokens
//
// Retry-After is read from every Transient response that has one, as delta-seconds or an
// HTTP-date relative to the injected clock, and capped at MaxRetryAfter.
//
// # Secrets in errors
//
// Error codes and descriptions come from the provider and may echo what we sent (an
// adversarial or buggy server can put the refresh token in error_description, or return a
// debug page quoting the request). Before they reach a provider.Error they are scrubbed:
// the presented refresh token and the client secret (raw, URL-escaped and JSON-escaped)
// become "[redacted]", as does any run of 20 or more token characters
// [A-Za-z0-9._~+/=_-] that contains a digit or a capital letter (real tokens do; snake_case
// error codes, host names and paths do not, so they stay readable). Scrubbing happens
// before truncation to MaxDescriptionLen so a cut can never leave half a secret behind.
//
// # Asking instead of presenting: RefreshTokenActive
//
// A Refresh that dies after the request may have left (worker killed, connection cut,
// timeout) leaves the caller not knowing whether the provider consumed the token.
// Presenting it again to find out is exactly what reuse detection punishes. The adapter
// therefore implements provider.RefreshTokenChecker with RFC 7662 token introspection,
// which reads a token's state without spending it:
//
//   - Only when Config.IntrospectionURL is set; otherwise RefreshTokenActive returns
//     supported == false and sends nothing. ValidateConfig holds introspection_url to the
//     token_url rules (absolute https with a host, http only to a loopback host, no user
//     info), because it receives the same secrets.
//   - One POST per call, form-encoded token=<refresh token>&token_type_hint=refresh_token
//     (section 2.1), with client authentication in the configured auth style: Basic by
//     default, client_id/client_secret in the body for "body". No grant_type, no scope,
//     and the token endpoint is never contacted.
//   - The answer is {"active": <bool>, ...} (section 2.2). "active" must be a JSON
//     boolean; anything else is a malformed answer, never a guess. active == false means
//     "do not present this token" (used, revoked, expired or unknown alike).
//   - Redirects are not followed and at most one request is sent, for the same reasons as
//     in Refresh: a followed 307/308 hands the token and secret to another host.
//
// Failures are classified with the same table as Refresh (network, 5xx/408/429 and
// transient codes are Transient with Retry-After; error codes, 401/403 and other 4xx are
// Permanent, e.g. invalid_client or http_401; an unreadable 400 is Transient), with one
// difference in the last row: a 2xx whose body is not a JSON object with a boolean
// "active" (and no error code) is Transient malformed_response, and its body is not
// quoted because an introspection answer describes the token. A 2xx carrying an error
// code is classified by that code, as in Refresh. Errors are scrubbed exactly as below,
// with the Basic credential as sent on the wire added to the secrets.
//
// # Expiry
//
// x/oauth2 computes Token.Expiry with the wall clock. The adapter ignores it and computes
// AccessExpiresAt from expires_in and RefreshExpiresAt from the non-standard but common
// refresh_token_expires_in, both relative to the injected clock, so tests and Temporal
// replays see deterministic times.
package oauth2provider
