package handler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingAudit counts the writes it is asked for and fails them all, as
// an audit log on a full disk or behind another process's lock does.
type countingAudit struct {
	mu     sync.Mutex
	writes []string
}

func (c *countingAudit) fail(what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, what)
	return errors.New("database is locked (5) (SQLITE_BUSY)")
}

func (c *countingAudit) BeginRequest(context.Context, *RequestRecord) error {
	return c.fail("begin")
}

func (c *countingAudit) RecordResult(context.Context, string, *Result) error {
	return c.fail("result")
}

func (c *countingAudit) FinishRequest(context.Context, *RequestRecord) error {
	return c.fail("finish")
}

func (c *countingAudit) RecordRequest(context.Context, *RequestRecord) error {
	return c.fail("record")
}

// An action the audit log cannot begin is refused after one write: each
// write may wait the busy timeout for another process's lock, and a second
// one only doubled the wait before the 503 (10 s instead of 5 s).
func TestUnavailableAuditIsTriedOnce(t *testing.T) {
	t.Parallel()
	r := &fakeRunner{nodes: []Node{{"node01", "sim"}}}
	a := &countingAudit{}
	h, err := New(Config{Secret: testSecret, Runner: r, Audit: a, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "PATCH", "DELETE", "PUT"} {
		a.writes = nil
		resp := h.Serve(context.Background(), &Request{Method: method, Path: "/", RawQuery: "nodes=node01",
			Header: http.Header{"Authorization": {operatorAuth(t)}}})
		if resp.Status != http.StatusServiceUnavailable {
			t.Errorf("%s: status got %d, want 503", method, resp.Status)
		}
		if !strings.Contains(string(resp.Body), "nothing ran") || strings.Contains(string(resp.Body), "SQLITE") {
			t.Errorf("%s: body %s: want it to say nothing ran, without SQLite's words", method, resp.Body)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id on the 503", method)
		}
		if len(a.writes) != 1 || a.writes[0] != "begin" {
			t.Errorf("%s: audit writes got %q, want [begin] alone", method, a.writes)
		}
	}
	if len(r.ran) != 0 {
		t.Errorf("ran with the audit log down: %v", r.ran)
	}
}

// resultlessAudit begins and finishes requests but cannot record results,
// as an audit log whose disk fills mid-request.
type resultlessAudit struct{ *fakeAudit }

func (resultlessAudit) RecordResult(context.Context, string, *Result) error {
	return errors.New("database or disk is full (13)")
}

// A result the audit log cannot take is in the server log, with what
// became of the node, so it is not lost.
func TestUnrecordedResultsAreLoggedWithTheirOutcome(t *testing.T) {
	t.Parallel()
	r := &fakeRunner{nodes: []Node{{"node01", "sim"}, {"node02", "sim"}}}
	var log strings.Builder
	h, err := New(Config{Secret: testSecret, Runner: r, Audit: resultlessAudit{newFakeAudit()},
		Logger: slog.New(slog.NewTextHandler(&log, nil)), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Serve(context.Background(), &Request{Method: "PATCH", Path: "/", RawQuery: "nodes=node[01-02]",
		Header: http.Header{"Authorization": {operatorAuth(t)}}})
	if resp.Status != http.StatusOK {
		t.Fatalf("status got %d, want 200: the commands ran", resp.Status)
	}
	for _, node := range []string{"node01", "node02"} {
		want := "node=" + node + " platform=sim action=power_on state=ok success=true exit_code=0 timed_out=false"
		if !strings.Contains(log.String(), want) {
			t.Errorf("server log lacks %q:\n%s", want, log.String())
		}
	}
}

// The one line each request logs says why a refused listing was refused.
func TestRefusedListingLogsItsError(t *testing.T) {
	t.Parallel()
	var log strings.Builder
	h, err := New(Config{Secret: testSecret, Runner: &fakeRunner{}, Audit: &countingAudit{},
		Logger: slog.New(slog.NewTextHandler(&log, nil)), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Serve(context.Background(), &Request{Method: "GET", Path: "/nodes", Header: http.Header{"Authorization": {operatorAuth(t)}}})
	if resp.Status != http.StatusServiceUnavailable {
		t.Fatalf("status got %d, want 503", resp.Status)
	}
	if want := `status=503 duration=0s error="audit log unavailable`; !strings.Contains(log.String(), want) {
		t.Errorf("request log line lacks %q:\n%s", want, log.String())
	}
}
