package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// ProxyOptions configures the proxy: the credentials' timing policy (to know when each
// refresh is due) and the fault injection.
type ProxyOptions struct {
	// Margin and Jitter are the credentials' policy.refresh_margin and policy.jitter.
	Margin, Jitter time.Duration
	// FaultRate is the probability that a token request gets an injected fault, while
	// faults are on (SetFaults).
	FaultRate float64
	// Seed seeds the fault choices.
	Seed int64
}

// Proxy sits in front of the fake provider on the loopback listener. For every token
// request it remembers the refresh token presented (the fake counts Processed per token
// value but cannot list them), decides whether the request gets an injected fault, and
// reads the answer to learn which credential each new refresh token belongs to and when
// its access token expires. That gives the scheduling lateness of every refresh: how long
// after its due time a credential first presented its refresh token.
type Proxy struct {
	fake     *oauth2test.Server
	Base     string // the proxy's base URL; the token endpoint is Base + oauth2test.TokenPath
	http     *http.Server
	opts     ProxyOptions
	faultsOn atomic.Bool

	mu        sync.Mutex
	rng       *rand.Rand
	owner     map[string]string    // refresh token -> credential
	presented map[string]bool      // refresh tokens seen on the wire
	due       map[string]time.Time // credential -> when its current access token is due for refresh
	current   map[string]string    // credential -> the refresh token last delivered to it
	expires   map[string]time.Time // credential -> when its current access token expires
	faults    map[string]int       // injected, by kind
	late      []time.Duration      // lateness samples since the last window
	allLate   []time.Duration
	nearKill  []time.Duration // samples within KillShadow of a worker kill
	expired   int             // first presentations after the access token had expired
	lastKill  time.Time
}

// KillShadow is how long after a kill -9 a refresh counts as delayed by the kill rather
// than by load: the restart pause (1-3 s), the server's sticky-queue timeout for the dead
// worker's workflow tasks (5 s), the heartbeat timeout of its activities (10 s).
const KillShadow = 15 * time.Second

// Killed records a worker kill for the lateness split.
func (p *Proxy) Killed(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastKill = at
}

// FaultKinds are the faults the proxy injects, one chosen uniformly per faulted request.
var FaultKinds = []struct {
	Name  string
	Fault oauth2test.Fault
}{
	{"503 before grant", oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: http.StatusServiceUnavailable, Phase: oauth2test.BeforeGrant}},
	{"429 Retry-After 2s", oauth2test.Fault{Kind: oauth2test.FaultRateLimit, RetryAfter: 2 * time.Second, Phase: oauth2test.BeforeGrant}},
	{"connection reset before grant", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection, Phase: oauth2test.BeforeGrant}},
	{"connection reset after grant", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection, Phase: oauth2test.AfterGrant}},
	{"5s latency after grant", oauth2test.Fault{Kind: oauth2test.FaultLatency, Delay: 5 * time.Second, Phase: oauth2test.AfterGrant}},
	{"malformed JSON before grant", oauth2test.Fault{Kind: oauth2test.FaultMalformedJSON, Phase: oauth2test.BeforeGrant}},
}

// NewProxy returns a proxy for fake serving at base; StartStack serves it.
func NewProxy(fake *oauth2test.Server, base string, opts ProxyOptions) *Proxy {
	p := &Proxy{
		fake: fake, Base: base, opts: opts,
		rng:       rand.New(rand.NewPCG(uint64(opts.Seed), 2)),
		owner:     map[string]string{},
		presented: map[string]bool{},
		due:       map[string]time.Time{},
		current:   map[string]string{},
		expires:   map[string]time.Time{},
		faults:    map[string]int{},
	}
	p.http = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	return p
}

// SetFaults turns fault injection on or off.
func (p *Proxy) SetFaults(on bool) { p.faultsOn.Store(on) }

// Own records that a seeded refresh token belongs to a credential.
func (p *Proxy) Own(refreshToken, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owner[refreshToken] = id
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != oauth2test.TokenPath {
		p.fake.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	presented := form.Get("refresh_token")
	now := time.Now()

	p.mu.Lock()
	id := p.owner[presented]
	if presented != "" && !p.presented[presented] {
		p.presented[presented] = true
		if due, ok := p.due[id]; ok {
			if !p.lastKill.IsZero() && now.Sub(p.lastKill) < KillShadow {
				p.nearKill = append(p.nearKill, now.Sub(due))
			} else {
				p.late = append(p.late, now.Sub(due))
				p.allLate = append(p.allLate, now.Sub(due))
			}
			if now.After(p.expires[id]) {
				p.expired++
			}
		}
	}
	if p.faultsOn.Load() && p.rng.Float64() < p.opts.FaultRate {
		k := FaultKinds[p.rng.IntN(len(FaultKinds))]
		f := k.Fault
		f.Count = 1
		// The fault goes to the next token request to arrive: this one, unless another
		// overtakes it, which changes nothing about the rate.
		p.fake.InjectFault(f)
		p.faults[k.Name]++
	}
	p.mu.Unlock()

	cw := &captureWriter{ResponseWriter: w}
	p.fake.ServeHTTP(cw, r)
	if cw.status != http.StatusOK || id == "" {
		return
	}
	var answer struct {
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
	}
	if json.Unmarshal(cw.body.Bytes(), &answer) != nil || answer.RefreshToken == "" || answer.ExpiresIn <= 0 {
		return
	}
	delivered := time.Now()
	lifetime := time.Duration(answer.ExpiresIn) * time.Second
	p.mu.Lock()
	p.owner[answer.RefreshToken] = id
	p.current[id] = answer.RefreshToken
	p.expires[id] = delivered.Add(lifetime)
	p.due[id] = delivered.Add(lifetime - p.renewalLead(id, lifetime))
	p.mu.Unlock()
}

// renewalLead mirrors workflows.NextWakeup for the credentials' policy: refresh
// max(margin, lifetime/3) (at most half the lifetime) plus the credential's jitter (at
// most a tenth of the lifetime) before expiry.
func (p *Proxy) renewalLead(id string, lifetime time.Duration) time.Duration {
	lead := max(p.opts.Margin, lifetime/3)
	lead = min(lead, lifetime/2)
	jitter := min(p.opts.Jitter, lifetime/10)
	return lead + time.Duration(workflows.JitterFraction(id)*float64(jitter))
}

// Due is when the proxy expects the credential's next refresh: the answer's delivery
// here plus its lifetime minus the renewal lead.
func (p *Proxy) Due(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.due[id]
	return d, ok
}

// Overdue counts the credentials whose refresh is more than a second past due and not yet
// begun (the delivered token not presented), and the worst of them. Unlike the lateness
// samples, taken when a refresh begins, it sees credentials that are stuck.
func (p *Proxy) Overdue(now time.Time) (n int, worst time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, tok := range p.current {
		if p.presented[tok] {
			continue
		}
		if d := now.Sub(p.due[id]); d > time.Second {
			n++
			worst = max(worst, d)
		}
	}
	return n, worst
}

// Window returns the lateness samples (outside the kill shadow) since the last call.
func (p *Proxy) Window() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.late
	p.late = nil
	return w
}

// Snapshot returns every refresh token presented, the faults injected by kind, every
// lateness sample outside and inside the kill shadow, and the number of first
// presentations after the access token had expired.
func (p *Proxy) Snapshot() (presented []string, faults map[string]int, late, nearKill []time.Duration, expired int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.presented {
		presented = append(presented, t)
	}
	return presented, copyCounts(p.faults), slices.Clone(p.allLate), slices.Clone(p.nearKill), p.expired
}

// FaultCount is the number of faults injected.
func (p *Proxy) FaultCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.faults {
		n += c
	}
	return n
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// captureWriter keeps a copy of the answer; it lets the fake hijack the connection for
// its connection-reset faults.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

func (c *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := c.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("soak proxy: connection cannot be hijacked")
	}
	return hj.Hijack()
}
