// Package chathub holds tokenwarden's adapters for SMSBAT ChatHub
// (https://chatapi.smsbat.com), whose API uses two levels of JWTs: a company token got
// by logging in, and operator tokens minted with the company token. This package
// implements the company token ("chathub-company"); operator tokens are minted by a
// separate credential that names its company credential as config.parent.
//
// # Company token wire protocol
//
//	POST {base_url}/api/company/get-token
//	Content-Type: application/json
//	{"login": "<grant.Username>", "password": "<grant.Password>"}
//
//	200 "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOi...fQ.SflKxw..."
//
// The answer is a bare JSON string holding the JWT (an unquoted JWT body is accepted
// too). There is no refresh token: a "refresh" logs in again, presenting the password
// once per call. base_url defaults to DefaultBaseURL.
//
// # Lifetime
//
// The documentation (seed 003) gives company tokens no expiry in the API and asks for
// them to be rotated every 3 to 6 months. So a company token is reported to live for
// its rotation period: AccessExpiresAt is the login time plus config.token_lifetime
// (default DefaultCompanyRotation, 180 days; at most MaxCompanyRotation), and the
// workflow logs in again ahead of it (at about two thirds: four months after the login
// by default). When the JWT carries an exp claim that comes sooner, AccessExpiresAt is
// exp; the payload is base64url-decoded WITHOUT verifying the signature (tokenwarden has
// no key, and only schedules by it), and never logged. policy.assumed_lifetime never
// applies: before this rule, a token without exp was assumed to live an hour and the
// company logged in every 40 minutes.
//
// # Login spacing
//
// The documentation also asks for authentication requests to be spaced a second apart.
// One Company adapter (the worker has one) sends the logins of one company (the base
// URL and login together) at least MinLoginInterval apart: a login that comes sooner
// waits its turn, or, when its context would end first, fails with a Transient
// login_spacing error whose RetryAfter is the wait. Logins of different companies do
// not wait for each other. Nothing is sent while waiting.
//
// # Classification
//
//	condition                                   kind       Code                 why
//	------------------------------------------  ---------  -------------------  ------------------------------------
//	no response, body unreadable                Transient  network              try again
//	HTTP 5xx, 408, 429                          Transient  http_<n>             server or rate trouble; Retry-After kept
//	HTTP 401, 403                               Permanent  login_rejected       wrong login or password, blocked company
//	HTTP 3xx (redirects are not followed)       Permanent  http_<n>             base_url is wrong
//	other 4xx (400, 404, 405, 410, ...)         Permanent  http_<n>             base_url or request is wrong
//	2xx that is not a JWT (not a JSON string,   Transient  malformed_response   never yields a token; body not quoted
//	  not three base64url parts, payload not a
//	  JSON object, exp not a number, exp in
//	  the past)
//	another login of the company is too recent  Transient  login_spacing        its turn is after the context's deadline
//	  (nothing sent)
//	config invalid                              Permanent  invalid_config
//	grant lacks username or password            Permanent  missing_grant
//
// Descriptions come from the error body ("message", "error", "title", ... or the text),
// scrubbed of the login, password and anything token-shaped.
package chathub
