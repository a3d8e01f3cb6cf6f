package baomingtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
)

type reply struct {
	status int
	body   map[string]any
	raw    string
}

func get(t *testing.T, base, path string, q url.Values) reply {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r reply) sta() float64 {
	n, ok := r.body["sta"].(float64)
	if !ok {
		return 999
	}
	return n
}

func (r reply) infoID() (string, bool) {
	data, ok := r.body["data"].(map[string]any)
	if !ok {
		return "", false
	}
	id, ok := data["info_id"].(string)
	return id, ok
}

func TestDetailRules(t *testing.T) {
	s := New()
	base := s.Start()
	t.Cleanup(s.Close)
	eid := NewEnrollID()
	tok := s.Issue()
	q := func(tok, eid string) url.Values { return url.Values{"access_token": {tok}, "eid": {eid}} }

	// Live token, account not enrolled: sta 0, info_id "".
	if r := get(t, base, DetailPath, q(tok, eid)); r.status != 200 || r.sta() != 0 || r.body["msg"] != "ok" {
		t.Fatalf("not enrolled: %d %s", r.status, r.raw)
	} else if id, ok := r.infoID(); !ok || id != "" {
		t.Fatalf("not enrolled: info_id %q present %v, want present and empty", id, ok)
	}
	infoID := s.Enroll(tok, eid)
	if len(infoID) != 24 || s.Enroll(tok, eid) != infoID {
		t.Fatalf("Enroll: %q, want one 24-hex record per account and enrollment", infoID)
	}
	r := get(t, base, DetailPath, q(tok, eid))
	if id, _ := r.infoID(); r.sta() != 0 || id != infoID || r.body["data"].(map[string]any)["eid"] != eid {
		t.Fatalf("enrolled: %s", r.raw)
	}
	// Another enrollment of the same account is a different record.
	if id, _ := get(t, base, DetailPath, q(tok, NewEnrollID())).infoID(); id != "" {
		t.Fatalf("another enrollment: info_id %q", id)
	}
	if r := get(t, base, DetailPath, url.Values{"access_token": {tok}}); r.sta() != StaBadRequest {
		t.Fatalf("no eid: %s", r.raw)
	}
	for _, bad := range []string{"", "bm_never_issued"} {
		if r := get(t, base, DetailPath, q(bad, eid)); r.status != 200 || r.sta() != StaInvalidToken || r.body["msg"] != "invalid access_token" {
			t.Fatalf("token %q: %d %s", bad, r.status, r.raw)
		}
	}
	again := s.Reissue(tok)
	s.Invalidate(tok)
	if r := get(t, base, DetailPath, q(tok, eid)); r.sta() != StaInvalidToken {
		t.Fatalf("invalidated: %s", r.raw)
	}
	if id, _ := get(t, base, DetailPath, q(again, eid)).infoID(); id != infoID {
		t.Fatalf("the new login's token: info_id %q, want the account's %q", id, infoID)
	}
	if got := s.Probes(tok); got != 5 {
		t.Fatalf("Probes = %d, want 5", got)
	}
	// Only the detail endpoint, only GET: the v1 user-info call is not the API's.
	if r := get(t, base, "/xcx/enroll/v1/userinfo", q(again, eid)); r.status != http.StatusNotFound {
		t.Fatalf("v1 userinfo: %d", r.status)
	}
	if resp, err := http.Post(base+DetailPath, "application/json", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	s.FailNext(2)
	for i := 0; i < 2; i++ {
		if r := get(t, base, DetailPath, q(again, eid)); r.status != http.StatusServiceUnavailable {
			t.Fatalf("FailNext %d: %d", i, r.status)
		}
	}
	if r := get(t, base, DetailPath, q(again, eid)); r.status != 200 || s.PendingFaults() != 0 {
		t.Fatalf("after the faults: %d, %d pending", r.status, s.PendingFaults())
	}
}
