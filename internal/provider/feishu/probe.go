package feishu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// UserInfoPath answers who the user_access_token belongs to; probes use it.
const UserInfoPath = "/open-apis/authen/v1/user_info"

// invalidTokenCodes are Feishu's answers for an access token it no longer accepts.
var invalidTokenCodes = map[int64]bool{
	99991661: true, // missing or malformed Authorization
	99991663: true, // invalid access token for authorization
	99991664: true, // invalid user access token
	99991668: true, // invalid access token
	99991677: true, // token expired
}

var _ provider.Prober = (*User)(nil)

// Probe asks user_info whether grant.AccessToken still works. It never presents the
// refresh token: the seed report's "verification" step that spent a single-use refresh
// token is exactly what a probe must not do.
func (u *User) Probe(ctx context.Context, cfg provider.Config, grant provider.Grant) (bool, error) {
	if grant.AccessToken == "" {
		return false, nil
	}
	// The workflow checked the configuration when it started, but the access token must
	// not cross plain http even for a caller that did not.
	if err := validateBaseURL(cfg.BaseURL); err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("feishu: config.%w", err)}
	}
	sc := scrub.New(grant.AccessToken, grant.RefreshToken, grant.ClientSecret)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(cfg, UserInfoPath), nil)
	if err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: sc.Error(err, 400)}
	}
	req.Header.Set("Authorization", "Bearer "+grant.AccessToken)
	resp, err := u.client.Do(req)
	if err != nil {
		return false, &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from Feishu user_info", Err: sc.Error(err, 400)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	var ans struct {
		Code *int64 `json:"code"`
		Msg  string `json:"msg"`
	}
	_ = json.Unmarshal(body, &ans)
	switch {
	case ans.Code != nil && *ans.Code == 0 && resp.StatusCode < 300:
		return true, nil
	case ans.Code != nil && invalidTokenCodes[*ans.Code], resp.StatusCode == http.StatusUnauthorized:
		return false, nil
	}
	code := fmt.Sprintf("http_%d", resp.StatusCode)
	if ans.Code != nil {
		code = fmt.Sprint(*ans.Code)
	}
	// Anything else says nothing about the token: ask again later.
	return false, &provider.Error{Kind: provider.Transient, Code: code, HTTPStatus: resp.StatusCode,
		Description: sc.Scrub(ans.Msg, scrub.MaxDescriptionLen)}
}
