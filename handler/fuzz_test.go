package handler

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fuzz targets: `go test` runs their seeds (f.Add and testdata/fuzz);
// `make fuzz` runs each one for FUZZTIME.

// FuzzExpandHostlist: expansion never panics, stays under its cap, yields
// unique valid names, and CompressHostlist folds them back into an
// expression that expands to the same set.
func FuzzExpandHostlist(f *testing.F) {
	for _, s := range []string{
		"node01", "node[01-10]", "gpu[099-101]", "node[1-3,7]", "rack[1-2]n[01-04]",
		"cn-01_a.b,x_y-[1-2]", "node[1-3],node2", "[1-2]", "n[0-2]", "node0[7-8]",
		"a[1,01,001]", "x[9-11]y[08-10]", "node[]", "n[1-[2]]", "a;rm", "node[5-1]",
		"n[1-99999999999]", "x[0-8000000][0-8000000]", ",", "a,,b",
	} {
		f.Add(s, uint16(100))
	}
	f.Fuzz(func(t *testing.T, expr string, capSeed uint16) {
		limit := 1 + int(capSeed)%5000
		names, err := ExpandHostlist(expr, limit)
		if err != nil {
			var he *HostlistError
			if !errors.As(err, &he) || names != nil {
				t.Fatalf("ExpandHostlist(%q): got %v, %#v; want nil and a *HostlistError", expr, names, err)
			}
			return
		}
		if len(names) == 0 || len(names) > limit {
			t.Fatalf("ExpandHostlist(%q, %d): got %d names, want 1 to %d", expr, limit, len(names), limit)
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Fatalf("ExpandHostlist(%q): %q twice", expr, n)
			}
			seen[n] = true
			if n == "" || strings.IndexFunc(n, func(r rune) bool { return r > 0x7f || !nameChar(byte(r)) }) >= 0 {
				t.Fatalf("ExpandHostlist(%q): name %q has a character a name may not", expr, n)
			}
		}
		// Every name is a hostlist of itself.
		if one, err := ExpandHostlist(names[0], 1); err != nil || !slices.Equal(one, names[:1]) {
			t.Fatalf("ExpandHostlist(%q) = %v, %v; want itself", names[0], one, err)
		}
		folded := CompressHostlist(names)
		back, err := ExpandHostlist(folded, limit)
		if err != nil {
			t.Fatalf("CompressHostlist(%q) = %q, which does not expand: %v", expr, folded, err)
		}
		want := slices.Clone(names)
		slices.Sort(want)
		slices.Sort(back)
		if !slices.Equal(back, want) {
			t.Fatalf("round trip of %q through %q: got %v, want %v", expr, folded, back, want)
		}
	})
}

// Token kinds FuzzServe picks from; the fuzzed string is the whole header
// only for tokenRaw.
const (
	tokenRaw       = iota // the fuzzed Authorization header as is
	tokenOperator         // valid, role operator
	tokenViewer           // valid, role viewer
	tokenNoRole           // valid, no role: an operator
	tokenSubject          // valid operator whose sub is the fuzzed string
	tokenExpired          // expired an hour ago
	tokenBadRole          // role "root"
	tokenHS512            // signed with the right secret but HS512
	tokenNoExp            // no exp claim
	tokenBearerRaw        // "Bearer " + the fuzzed string
	tokenKinds
)

// FuzzServe drives the handler with fuzzed methods, paths, queries and
// Authorization headers and checks what must hold for any request: no
// panic, a documented status, a JSON body, exactly one audit record, and no
// command unless the answer is 200 to a valid token allowed to run it.
func FuzzServe(f *testing.F) {
	seeds := []struct {
		method, path, query, auth string
		kind, flags               uint8
	}{
		{"GET", "/", "nodes=node[01-02]", "", tokenOperator, 0},
		{"PATCH", "/", "groups=all", "", tokenViewer, 0},
		{"DELETE", "/", "nodes=node01,ghost&groups=even", "", tokenNoRole, 0},
		{"PUT", "/", "nodes=node%5B01-03%5D", "alice\x00\xff", tokenSubject, 0},
		{"GET", "/nodes", "", "", tokenViewer, 0},
		{"GET", "/groups", "", "", tokenOperator, 0},
		{"GET", "/", "nodes=node01", "Bearer not.a.jwt", tokenRaw, 0},
		{"GET", "/", "nodes=node01", "eyJhbGciOiJub25lIn0.e30.", tokenBearerRaw, 0},
		{"GET", "/", "nodes=node01", "", tokenExpired, 0},
		{"GET", "/", "nodes=node01", "", tokenBadRole, 0},
		{"GET", "/", "nodes=node01", "", tokenHS512, 0},
		{"GET", "/", "nodes=node01", "", tokenNoExp, 0},
		{"POST", "/", "nodes=node01", "", tokenOperator, 0},
		{"GET", "/../nodes", "", "", tokenOperator, 0},
		{"GET", "/", "nodes=%zz", "", tokenOperator, 0},
		{"GET", "/", "nodes=x[0-8000000][0-8000000]", "", tokenOperator, 0},
		{"GET", "/", "nodes[]=x;x=1", "", tokenOperator, 0},
		{"PATCH", "/", "nodes=node01", "", tokenOperator, 1}, // audit log down
		{"GET", "/nodes", "", "", tokenOperator, 1},
		{"GET", "/", "nodes=node01", "", tokenOperator, 2}, // body too big
		{"G\xffT", "/\x00", "\xff", "Bearer \xff", tokenRaw, 0},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.auth, s.kind, s.flags)
	}
	exp := testNow.Add(time.Hour).Unix()
	valid := map[uint8]string{
		tokenOperator: sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "sub": "op", "role": RoleOperator}),
		tokenViewer:   sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "sub": "view", "role": RoleViewer}),
		tokenNoRole:   sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "sub": "old"}),
	}
	invalid := map[uint8]string{
		tokenExpired: sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": testNow.Add(-time.Hour).Unix()}),
		tokenBadRole: sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp, "role": "root"}),
		tokenHS512:   sign(f, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"exp": exp}),
		tokenNoExp:   sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "x"}),
	}
	documented := []int{200, 400, 401, 403, 404, 405, 413, 503}
	actions := map[string]bool{"GET": true, "PATCH": true, "DELETE": true, "PUT": true}

	f.Fuzz(func(t *testing.T, method, path, query, auth string, kind, flags uint8) {
		kind %= tokenKinds
		runner := &fakeRunner{
			nodes:  []Node{{"node01", "sim"}, {"node02", "sim"}, {"node03", "ipmi"}},
			groups: []Group{{"even", []string{"node02"}}, {"all", []string{"node01", "node02", "node03"}}},
		}
		audit := newFakeAudit()
		if flags&1 != 0 {
			audit.fail = errors.New("disk I/O error")
		}
		h, err := New(Config{Secret: testSecret, Runner: runner, Audit: audit, HostlistCap: 1000, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		header := http.Header{}
		validToken := false
		viewer := false
		switch kind {
		case tokenRaw:
			header.Set("Authorization", auth)
		case tokenBearerRaw:
			header.Set("Authorization", "Bearer "+auth)
		case tokenSubject:
			tok, err := MintToken(testSecret, auth, RoleOperator, time.Hour, testNow)
			if err != nil {
				t.Fatal(err)
			}
			header.Set("Authorization", "Bearer "+tok)
			validToken = true
		default:
			if tok, ok := valid[kind]; ok {
				header.Set("Authorization", "Bearer "+tok)
				validToken, viewer = true, kind == tokenViewer
			} else {
				header.Set("Authorization", "Bearer "+invalid[kind])
			}
		}
		req := &Request{Method: method, Path: path, RawQuery: query, Header: header, BodyTooBig: flags&2 != 0, Transport: TransportHTTP}
		// Twice: the second call meets the token cache the first filled,
		// and must be answered and recorded the same way.
		firstStatus := 0
		for call := 1; call <= 2; call++ {
			resp := h.Serve(context.Background(), req)
			if call == 1 {
				firstStatus = resp.Status
			} else if resp.Status != firstStatus {
				t.Fatalf("the same request twice: got %d, then %d", firstStatus, resp.Status)
			}

			if !slices.Contains(documented, resp.Status) {
				t.Fatalf("status %d is not one the API documents (%v)", resp.Status, documented)
			}
			if !json.Valid(resp.Body) {
				t.Fatalf("body is not JSON: %q", resp.Body)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", resp.Header.Get("Content-Type"))
			}
			id := resp.Header.Get("X-Request-Id")
			if len(id) != 26 {
				t.Fatalf("X-Request-Id: got %q, want a 26-character id", id)
			}
			if !validToken && resp.Status != 401 && resp.Status != 413 {
				t.Fatalf("status %d for an invalid token, want 401 (or 413 for an oversized request)", resp.Status)
			}
			ranAllowed := resp.Status == 200 && validToken && path == "/" && actions[method] && (!viewer || method == "GET")
			if len(runner.ran) > 0 && !ranAllowed {
				t.Fatalf("commands ran (%v) for status %d, token kind %d, %q %q", runner.ran, resp.Status, kind, method, path)
			}

			if resp.Status != 200 {
				var doc ErrorDocument
				if err := json.Unmarshal(resp.Body, &doc); err != nil || len(doc.Errors) != 1 ||
					doc.Errors[0].Status != strconv.Itoa(resp.Status) || doc.Errors[0].Detail == "" {
					t.Fatalf("error body %q: want one error with status %d and a detail (%v)", resp.Body, resp.Status, err)
				}
			}

			if audit.fail != nil {
				if len(audit.requests) != 0 || len(runner.ran) != 0 {
					t.Fatalf("audit log down: got %d records and ran %v, want none", len(audit.requests), runner.ran)
				}
				if resp.Status == 200 {
					t.Fatalf("audit log down: got 200, want a refusal")
				}
				continue
			}
			if len(audit.requests) != call {
				t.Fatalf("audit records after %d calls: got %d, want one per call", call, len(audit.requests))
			}
			rec := audit.requests[id]
			if rec == nil {
				t.Fatalf("the audit record is not the X-Request-Id %s", id)
			}
			if rec.Status != resp.Status || rec.State != RequestDone {
				t.Fatalf("audit record: got status %d state %q, want %d done", rec.Status, rec.State, resp.Status)
			}
			if resp.Status != 200 && rec.Error == "" {
				t.Fatalf("audit record of a %d has no error", resp.Status)
			}
			if resp.Status == 200 && path == "/" {
				var doc Document[CommandAttributes]
				if err := json.Unmarshal(resp.Body, &doc); err != nil {
					t.Fatalf("decode %s: %v", resp.Body, err)
				}
				if len(doc.Data) != rec.NodeCount || len(audit.results[id]) != rec.NodeCount || rec.NodeCount == 0 {
					t.Fatalf("nodes: answered %d, recorded %d, node_count %d; want them equal and not 0", len(doc.Data), len(audit.results[id]), rec.NodeCount)
				}
			}
		}
	})
}
