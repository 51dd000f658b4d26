package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// fakeAudit counts calls and fails when told to.
type fakeAudit struct {
	calls int
	err   error
}

func (f *fakeAudit) BeginRequest(context.Context, *handler.RequestRecord) error {
	f.calls++
	return f.err
}

func (f *fakeAudit) FinishRequest(context.Context, *handler.RequestRecord) error {
	f.calls++
	return f.err
}

func (f *fakeAudit) RecordRequest(context.Context, *handler.RequestRecord) error {
	f.calls++
	return f.err
}

func (f *fakeAudit) RecordResult(context.Context, string, *handler.Result) error {
	f.calls++
	return f.err
}

func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line is not one JSON object: %v\n%s", err, l)
		}
		out = append(out, m)
	}
	return out
}

func TestTeeAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 3, 12, 19, 4, 5, 123e6, time.UTC)
	rec := &handler.RequestRecord{
		ID: "01JREQ", Time: at, Transport: handler.TransportLambda, TransportID: "c0ffee-1",
		RemoteAddr: "203.0.113.9", Method: "PATCH", Path: "/", Query: "nodes=" + strings.Repeat("n", 5000),
		Action: "power_on", Caller: "alice\n{\"audit\":\"forged\"}", Role: "operator", NodeCount: 1,
		Status: 200, Duration: 1500 * time.Millisecond, State: handler.RequestDone,
		Error: "copied " + testSecret,
	}
	res := &handler.Result{
		Node: "node01", Platform: "ipmi", Action: handler.ActionPowerOn, Ran: true, Start: at,
		Duration: 40 * time.Millisecond, ExitCode: 0, State: handler.StateOK, Success: true,
		Stdout: "Chassis Power Control: Up/On\n", Stderr: "password=hunter2\n", StderrTruncated: true,
		Variables: map[string]string{"name": "node01", "ipmi_password": handler.Redacted, "note": testSecret},
	}
	killed := &handler.Result{Node: "node02", Platform: "ipmi", Action: handler.ActionPowerOn, Start: at, ExitCode: -1, TimedOut: true, State: handler.StateFailed, Error: "not run: request deadline reached"}

	var out bytes.Buffer
	store := &fakeAudit{}
	tee := newTeeAudit(store, &out, testSecret, slog.New(slog.DiscardHandler))
	if err := tee.BeginRequest(ctx, rec); err != nil {
		t.Fatal(err)
	}
	_ = tee.RecordResult(ctx, rec.ID, res)
	_ = tee.RecordResult(ctx, rec.ID, killed)
	_ = tee.FinishRequest(ctx, rec)
	store.err = errors.New("disk I/O error")
	if err := tee.RecordRequest(ctx, rec); err == nil || err.Error() != "disk I/O error" {
		t.Errorf("got %v, want the store's error passed on", err)
	}
	if store.calls != 5 {
		t.Errorf("store got %d calls, want 5", store.calls)
	}

	if bytes.Contains(out.Bytes(), []byte(testSecret)) {
		t.Errorf("the secret reached the lines:\n%s", out.Bytes())
	}
	for _, leak := range []string{"hunter2", "Chassis Power"} {
		if bytes.Contains(out.Bytes(), []byte(leak)) {
			t.Errorf("command output %q reached the lines", leak)
		}
	}
	lines := decodeLines(t, out.Bytes())
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 5 (a forged newline must not add one):\n%s", len(lines), out.Bytes())
	}

	begin := lines[0]
	for k, want := range map[string]any{
		"audit": "request", "event": "begin", "id": "01JREQ", "time": "2026-03-12T19:04:05.123Z",
		"transport": "lambda", "transport_id": "c0ffee-1", "remote_addr": "203.0.113.9",
		"caller": "alice\n{\"audit\":\"forged\"}", "status": float64(200), "duration_ms": float64(1500),
		"error": "copied " + handler.Redacted, "stored": true,
	} {
		if begin[k] != want {
			t.Errorf("request line %s: got %#v, want %#v", k, begin[k], want)
		}
	}
	if q := begin["query"].(string); len(q) != maxQueryInLine+3 || !strings.HasSuffix(q, "...") {
		t.Errorf("query: got %d bytes, want it capped at %d plus ...", len(q), maxQueryInLine)
	}

	ran := lines[1]
	for k, want := range map[string]any{
		"audit": "result", "request_id": "01JREQ", "node": "node01", "action": "power_on",
		"started_at": "2026-03-12T19:04:05.123Z", "duration_ms": float64(40), "exit_code": float64(0),
		"state": "ok", "success": true, "ran": true, "timed_out": false,
		"stdout_bytes": float64(29), "stderr_bytes": float64(17), "stderr_truncated": true, "stored": true,
	} {
		if ran[k] != want {
			t.Errorf("result line %s: got %#v, want %#v", k, ran[k], want)
		}
	}
	if _, ok := ran["stdout"]; ok {
		t.Error("result line carries stdout")
	}
	vars := ran["variables"].(map[string]any)
	if vars["ipmi_password"] != handler.Redacted || vars["note"] != handler.Redacted || vars["name"] != "node01" {
		t.Errorf("variables: got %v, want secrets redacted and name kept", vars)
	}

	if k := lines[2]; k["exit_code"] != nil || k["timed_out"] != true || k["ran"] != false || k["error"] != "not run: request deadline reached" {
		t.Errorf("timed-out line: got %v, want exit_code null, timed_out, not ran, the reason", k)
	}
	if f := lines[3]; f["event"] != "finish" {
		t.Errorf("got event %v, want finish", f["event"])
	}
	if r := lines[4]; r["event"] != "record" || r["stored"] != false || r["store_error"] != "disk I/O error" {
		t.Errorf("failed store: got %v, want event record, stored false and the error", r)
	}
}
