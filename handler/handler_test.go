package handler

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// These tests drive the handler with an in-memory runner and audit log, so
// they can count exactly what ran and what was recorded. The real runner,
// store and binaries are exercised end to end in cmd/local.

var testSecret = []byte("0123456789abcdef0123456789abcdef")

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type fakeRunner struct {
	mu     sync.Mutex
	nodes  []Node
	groups []Group
	ran    []string
}

func (f *fakeRunner) Nodes() []Node   { return f.nodes }
func (f *fakeRunner) Groups() []Group { return f.groups }
func (f *fakeRunner) Run(_ context.Context, a Action, names []string, report func(Result)) {
	known := make(map[string]string)
	for _, n := range f.nodes {
		known[n.Name] = n.Platform
	}
	for _, n := range names {
		p, ok := known[n]
		if !ok {
			report(Result{Node: n, Action: a, Platform: "missing", Missing: true, ExitCode: -1, State: StateMissing, Error: "node is not in the topology"})
			continue
		}
		f.mu.Lock()
		f.ran = append(f.ran, string(a)+":"+n)
		f.mu.Unlock()
		on := true
		r := Result{Node: n, Action: a, Platform: p, Ran: true, ExitCode: 0, Success: true, State: StateOK}
		if a == ActionStatus {
			r.State, r.Running = StateOn, &on
		}
		report(r)
	}
}

type fakeAudit struct {
	mu       sync.Mutex
	requests map[string]*RequestRecord
	results  map[string][]Result
	fail     error
}

func newFakeAudit() *fakeAudit {
	return &fakeAudit{requests: map[string]*RequestRecord{}, results: map[string][]Result{}}
}

func (f *fakeAudit) BeginRequest(_ context.Context, rec *RequestRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if _, dup := f.requests[rec.ID]; dup {
		return errors.New("duplicate request id")
	}
	c := *rec
	f.requests[rec.ID] = &c
	return nil
}

func (f *fakeAudit) RecordResult(_ context.Context, id string, res *Result) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.requests[id]; !ok {
		return errors.New("result for unknown request")
	}
	f.results[id] = append(f.results[id], *res)
	return nil
}

func (f *fakeAudit) FinishRequest(_ context.Context, rec *RequestRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.requests[rec.ID]; !ok {
		return errors.New("finish for unknown request")
	}
	c := *rec
	c.State = RequestDone
	f.requests[rec.ID] = &c
	return nil
}

func (f *fakeAudit) RecordRequest(ctx context.Context, rec *RequestRecord) error {
	return f.BeginRequest(ctx, rec)
}

func newTestHandler(t testing.TB) (*Handler, *fakeRunner, *fakeAudit) {
	t.Helper()
	r := &fakeRunner{
		nodes:  []Node{{"node01", "sim"}, {"node02", "sim"}, {"node03", "ipmi"}},
		groups: []Group{{"even", []string{"node02"}}, {"all", []string{"node01", "node02", "node03"}}},
	}
	a := newFakeAudit()
	h, err := New(Config{Secret: testSecret, Runner: r, Audit: a, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return h, r, a
}

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	t.Parallel()
	exp := testNow.Add(time.Hour).Unix()
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"exp": exp})
	tests := []struct {
		name       string
		auth       string
		method     string
		wantStatus int
		wantDetail string
	}{
		{"valid operator", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "role": "operator", "sub": "alice"}), "PATCH", 200, ""},
		{"role-less token is operator", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "admin": true}), "PATCH", 200, ""},
		{"lowercase bearer scheme", "bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp}), "GET", 200, ""},
		{"viewer may read status", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "role": "viewer"}), "GET", 200, ""},
		{"viewer may not power on", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "role": "viewer"}), "PATCH", 403, "needs the operator role"},
		{"viewer may not power off", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "role": "viewer"}), "DELETE", 403, "operator"},
		{"unknown role", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "role": "root"}), "GET", 401, "unknown role"},
		{"alg none", "Bearer " + noneTok, "GET", 401, "signature is invalid"},
		{"HS512", "Bearer " + sign(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"exp": exp}), "GET", 401, "signature is invalid"},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": testNow.Add(-time.Hour).Unix()}), "GET", 401, "token expired on 2026-11-25T11:00:00Z"},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "x"}), "GET", 401, "no expiry"},
		{"future nbf", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "nbf": testNow.Add(time.Hour).Unix()}), "GET", 401, "not valid yet"},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), jwt.MapClaims{"exp": exp}), "GET", 401, "signature is invalid"},
		{"missing header", "", "GET", 401, "missing Authorization"},
		{"basic scheme", "Basic dXNlcjpwYXNz", "GET", 401, "not 'Bearer"},
		{"garbage token", "Bearer not.a.jwt", "GET", 401, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, r, a := newTestHandler(t)
			req := &Request{Method: tt.method, Path: "/", RawQuery: "nodes=node01", Header: http.Header{}, Transport: TransportHTTP}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp := h.Serve(context.Background(), req)
			if resp.Status != tt.wantStatus {
				t.Fatalf("status: got %d, want %d (body %s)", resp.Status, tt.wantStatus, resp.Body)
			}
			if len(a.requests) != 1 {
				t.Errorf("audit rows: got %d, want 1", len(a.requests))
			}
			id := resp.Header.Get("X-Request-Id")
			rec, ok := a.requests[id]
			if !ok {
				t.Fatalf("X-Request-Id %q not in audit log", id)
			}
			if rec.Status != tt.wantStatus {
				t.Errorf("audited status: got %d, want %d", rec.Status, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				if len(r.ran) != 0 {
					t.Errorf("commands ran on a rejected request: %v", r.ran)
				}
				var doc ErrorDocument
				if err := json.Unmarshal(resp.Body, &doc); err != nil || len(doc.Errors) != 1 {
					t.Fatalf("error body %s: %v", resp.Body, err)
				}
				if !strings.Contains(doc.Errors[0].Detail, tt.wantDetail) {
					t.Errorf("detail: got %q, want it to contain %q", doc.Errors[0].Detail, tt.wantDetail)
				}
				if rec.Error == "" {
					t.Errorf("audited error is empty")
				}
			}
		})
	}
}

func operatorAuth(t testing.TB) string {
	tok, err := MintToken(testSecret, "tester", RoleOperator, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		path       string
		query      string
		wantStatus int
		wantRan    []string
		wantIDs    []string
		wantAllow  string
	}{
		{"status", "GET", "/", "nodes=node[01-02]", 200, []string{"status:node01", "status:node02"}, []string{"node01", "node02"}, ""},
		{"on", "PATCH", "/", "nodes=node03", 200, []string{"power_on:node03"}, []string{"node03"}, ""},
		{"off", "DELETE", "/", "nodes=node01", 200, []string{"power_off:node01"}, []string{"node01"}, ""},
		{"restart", "PUT", "/", "nodes=node02", 200, []string{"restart:node02"}, []string{"node02"}, ""},
		{"groups", "GET", "/", "groups=even", 200, []string{"status:node02"}, []string{"node02"}, ""},
		{"nodes then groups deduped", "GET", "/", "nodes=node02,node01&groups=all", 200, []string{"status:node02", "status:node01", "status:node03"}, []string{"node02", "node01", "node03"}, ""},
		{"repeated nodes params", "GET", "/", "nodes=node01&nodes=node03", 200, []string{"status:node01", "status:node03"}, []string{"node01", "node03"}, ""},
		{"escaped brackets", "GET", "/", "nodes=node%5B01-02%5D", 200, []string{"status:node01", "status:node02"}, []string{"node01", "node02"}, ""},
		{"missing node reported", "GET", "/", "nodes=node09", 200, nil, []string{"node09"}, ""},
		{"unknown group", "GET", "/", "groups=gpu", 400, nil, nil, ""},
		{"no targets", "GET", "/", "", 400, nil, nil, ""},
		{"bad hostlist", "GET", "/", "nodes=node[1-", 400, nil, nil, ""},
		{"unknown param", "GET", "/", "nodes%5B%5D=x", 400, nil, nil, ""},
		{"bad escape", "GET", "/", "nodes=%zz", 400, nil, nil, ""},
		{"over cap", "GET", "/", "nodes=node[1-99999999]", 400, nil, nil, ""},
		{"unknown route", "GET", "/power", "", 404, nil, nil, ""},
		{"path trick", "GET", "/../nodes", "", 404, nil, nil, ""},
		{"trailing slash", "GET", "/nodes/", "", 404, nil, nil, ""},
		{"wrong method", "POST", "/", "nodes=node01", 405, nil, nil, "GET, PATCH, PUT, DELETE"},
		{"head", "HEAD", "/nodes", "", 405, nil, nil, "GET"},
		{"trace", "TRACE", "/", "", 405, nil, nil, "GET, PATCH, PUT, DELETE"},
		{"huge query", "GET", "/", "nodes=" + strings.Repeat("a", DefaultMaxQueryBytes), 413, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, r, a := newTestHandler(t)
			req := &Request{Method: tt.method, Path: tt.path, RawQuery: tt.query, Header: http.Header{"Authorization": {operatorAuth(t)}}, Transport: TransportHTTP}
			resp := h.Serve(context.Background(), req)
			if resp.Status != tt.wantStatus {
				t.Fatalf("status: got %d, want %d (body %s)", resp.Status, tt.wantStatus, resp.Body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("content type: got %q", got)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow: got %q, want %q", got, tt.wantAllow)
			}
			if !slices.Equal(r.ran, tt.wantRan) {
				t.Errorf("ran: got %v, want %v", r.ran, tt.wantRan)
			}
			if len(a.requests) != 1 {
				t.Errorf("audit rows: got %d, want 1", len(a.requests))
			}
			id := resp.Header.Get("X-Request-Id")
			if rec := a.requests[id]; rec == nil || rec.Status != tt.wantStatus || rec.State != RequestDone {
				t.Errorf("audit row for %s: got %+v, want status %d, done", id, rec, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				return
			}
			var doc Document[CommandAttributes]
			if err := json.Unmarshal(resp.Body, &doc); err != nil {
				t.Fatalf("body %s: %v", resp.Body, err)
			}
			var ids []string
			for _, d := range doc.Data {
				ids = append(ids, d.ID)
				if d.Type != "commands" || d.Attributes.NodeName != d.ID {
					t.Errorf("resource %+v: want type commands and node-name = id", d)
				}
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("ids: got %v, want %v", ids, tt.wantIDs)
			}
			if got := len(a.results[id]); got != len(tt.wantIDs) {
				t.Errorf("audited results: got %d, want %d", got, len(tt.wantIDs))
			}
		})
	}
}

func TestStatusBodyKeepsOriginalShape(t *testing.T) {
	t.Parallel()
	h, _, _ := newTestHandler(t)
	resp := h.Serve(context.Background(), &Request{Method: "GET", Path: "/", RawQuery: "nodes=node01,ghost", Header: http.Header{"Authorization": {operatorAuth(t)}}})
	var raw struct {
		Data []struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Data) != 2 {
		t.Fatalf("data: got %d elements, want 2", len(raw.Data))
	}
	on, ghost := raw.Data[0].Attributes, raw.Data[1].Attributes
	for k, want := range map[string]any{"action": "status", "node-name": "node01", "platform": "sim", "missing": false, "success": true, "running": true, "state": "on", "exit-code": 0.0} {
		if on[k] != want {
			t.Errorf("node01 %s: got %v, want %v", k, on[k], want)
		}
	}
	for k, want := range map[string]any{"missing": true, "success": false, "running": nil, "platform": "missing", "exit-code": nil} {
		if v, ok := ghost[k]; !ok || v != want {
			t.Errorf("ghost %s: got %v (present %v), want %v", k, v, ok, want)
		}
	}
	// power actions carry no running attribute
	resp = h.Serve(context.Background(), &Request{Method: "PATCH", Path: "/", RawQuery: "nodes=node01", Header: http.Header{"Authorization": {operatorAuth(t)}}})
	if strings.Contains(string(resp.Body), "running") {
		t.Errorf("power_on body has running: %s", resp.Body)
	}
}

func TestListings(t *testing.T) {
	t.Parallel()
	h, _, a := newTestHandler(t)
	resp := h.Serve(context.Background(), &Request{Method: "GET", Path: "/nodes", Header: http.Header{"Authorization": {operatorAuth(t)}}})
	want := `{"data":[{"type":"nodes","id":"node01","attributes":{"name":"node01","platform":"sim"}},{"type":"nodes","id":"node02","attributes":{"name":"node02","platform":"sim"}},{"type":"nodes","id":"node03","attributes":{"name":"node03","platform":"ipmi"}}]}` + "\n"
	if string(resp.Body) != want {
		t.Errorf("GET /nodes: got %s, want %s", resp.Body, want)
	}
	resp = h.Serve(context.Background(), &Request{Method: "GET", Path: "/groups", Header: http.Header{"Authorization": {operatorAuth(t)}}})
	want = `{"data":[{"type":"groups","id":"even","attributes":{"name":"even","nodes":["node02"]}},{"type":"groups","id":"all","attributes":{"name":"all","nodes":["node01","node02","node03"]}}]}` + "\n"
	if string(resp.Body) != want {
		t.Errorf("GET /groups: got %s, want %s", resp.Body, want)
	}
	if len(a.requests) != 2 {
		t.Errorf("audit rows: got %d, want 2", len(a.requests))
	}
	for _, rec := range a.requests {
		if rec.Caller != "tester" || rec.Role != RoleOperator {
			t.Errorf("caller: got %q/%q, want tester/operator", rec.Caller, rec.Role)
		}
	}
}

func TestAuditUnavailableRunsNothing(t *testing.T) {
	t.Parallel()
	h, r, a := newTestHandler(t)
	a.fail = errors.New("disk I/O error")
	for _, m := range []string{"GET", "PATCH"} {
		resp := h.Serve(context.Background(), &Request{Method: m, Path: "/", RawQuery: "nodes=node01", Header: http.Header{"Authorization": {operatorAuth(t)}}})
		if resp.Status != 503 {
			t.Errorf("%s: status got %d, want 503", m, resp.Status)
		}
		if !strings.Contains(string(resp.Body), "nothing ran") {
			t.Errorf("%s: body %s does not say nothing ran", m, resp.Body)
		}
	}
	resp := h.Serve(context.Background(), &Request{Method: "GET", Path: "/nodes", Header: http.Header{"Authorization": {operatorAuth(t)}}})
	if resp.Status != 503 {
		t.Errorf("GET /nodes: status got %d, want 503", resp.Status)
	}
	if len(r.ran) != 0 {
		t.Errorf("ran with the audit log down: %v", r.ran)
	}
}

func TestNewRejectsShortSecret(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Secret: []byte("short"), Runner: &fakeRunner{}, Audit: newFakeAudit()})
	if err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("got %v, want an error saying at least 32 bytes", err)
	}
}

func TestRequestIDsSortByTime(t *testing.T) {
	t.Parallel()
	a := NewRequestID(testNow)
	b := NewRequestID(testNow.Add(time.Millisecond))
	if len(a) != 26 || !(a < b) {
		t.Errorf("ids %q, %q: want 26 chars and increasing", a, b)
	}
	if NewRequestID(testNow) == a {
		t.Errorf("two ids in the same millisecond are equal")
	}
}
