// Package baoming is tokenwarden's adapter for 报名工具 (baoming), a WeChat mini-program
// for event enrolment ("baoming"). Its access tokens cannot be refreshed: the account's
// owner logs in again in WeChat when one dies. So a baoming credential's whole
// lifecycle is liveness: probe the token on a schedule, and tell a human (or, by policy,
// retire the credential) when it stops working. This is what the setup it replaces did
// from cron (seed 004): read each token from MongoDB, ask the enrollment-detail endpoint
// whether it still works, delete it when not.
//
// # Wire format
//
//	GET {base_url}/xcx/enroll/v3/detail?access_token=<token>&eid=<config.eid>
//	Accept: application/json
//
// base_url defaults to https://api-xcx-qunsou.weiyoubot.cn. The endpoint reads the
// detail of one enrollment as the token's account sees it, so it needs the enrollment:
// eid, the id of an enrollment the account has joined. The token travels in the query
// string, as the API wants it; nothing else is sent (no cookie, no body). The answers:
//
//	{"sta":0,"msg":"ok","data":{"eid":"...","info_id":"698add7c7068f814935d6804",...}}
//	{"sta":0,"msg":"ok","data":{"eid":"...","info_id":""}}    (or "data":null)
//	{"sta":-500,"msg":"invalid access_token"}                  (any non-zero sta)
//
// The first is a live token: the account's own enrollment record (info_id) came back.
// The setup this replaces judged a token valid exactly when sta == 0 AND info_id is
// present (seed 004: "sta=0, info_id 存在 → Token 有效"), and so does this adapter: an
// answer with sta == 0 but no info_id (missing, null, "", or no data at all) is a "no",
// with the code not_enrolled, because from it one cannot tell a live token of an
// account that never joined the enrollment from anything else. Choose for config.eid
// an enrollment the account has joined; a not_enrolled verdict says to fix that rather
// than to log in again.
//
// # Outcomes
//
// Rules apply top to bottom; the first match wins. A "no" is (false, nil) from Probe
// and a ProbeResult with Valid false and the Code below from ProbeDetail; failures to
// find out are *provider.Error values.
//
//	answer                                          outcome                          why
//	----------------------------------------------  -------------------------------  ---------------------------------------
//	config invalid (no eid, bad base_url)           Permanent invalid_config         nothing is sent; fix the credential
//	no response (dial, reset, timeout, ctx)         Transient network                nothing learned; probe again later
//	body could not be read                          Transient network                connection died mid-answer
//	HTTP 401 or 403                                 no, token_rejected               the API refuses the token itself
//	HTTP 5xx, 408, 429                              Transient http_<n>               server or rate trouble; Retry-After
//	                                                                                 (delta-seconds) honoured, capped at 1h
//	other non-2xx (3xx included: redirects are      Transient http_<n>               most likely a proxy; the token is not
//	  not followed)                                                                  judged on it
//	2xx, not a JSON object, or sta missing or not   Transient malformed_response     the body is not quoted (it may hold the
//	  an integer                                                                     account's data)
//	sta != 0                                        no, token_rejected               the API no longer accepts the token
//	sta == 0 without info_id                        no, not_enrolled                 seed 004's rule; see above
//	sta == 0 with info_id                           yes, label info_id               a live token
//
// sta may arrive as a JSON number or a numeric string; info_id as a string or a number.
// The msg of a "no" becomes its Description.
//
// # Labels
//
// ProbeDetail (provider.DetailedProber) returns the answer's info_id as the label
// "info_id". The other fields the setup kept with each token (uname, pic, unionid, the
// 名片 card it belonged to) come from the WeChat login, not from this answer, so a probe
// cannot return them: they are data to store with the seed, not to learn by probing.
//
// # Configuration
//
// eid is required: 24 hex digits (the form baoming's ids take, info_id included); the
// strict form also keeps an access token pasted into the wrong field out of workflow
// input and status, where no secret may be. base_url is optional (tests point it at loopback; a path prefix is
// kept) and obeys the rule of every URL that receives secrets: https, or http to a
// loopback host. The fields other adapters use (token_url, introspection_url,
// userinfo_url, revocation_url, client_id, auth_style, scopes, operator_id, parent,
// token_lifetime) are refused rather than ignored. The grant is the access token alone:
// the adapter has no Refresh (it is no provider.Refresher).
//
// # Secrets in errors
//
// Go's HTTP client quotes the whole URL, query string and token included, in its
// errors, and a proxy may echo it in a body: every error text and description passes
// through the scrubber, which replaces the token (raw and escaped) and any token-shaped
// run with "[redacted]". Redirects are not followed, so the token in the query string
// never travels to a host the Location names.
package baoming
