package store_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/store"
)

func TestBeginRecordFinish(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	db := rawDB(t, path)
	ctx := context.Background()

	rec := newRequest("01JREQ0000000000000000000A")
	rec.TransportID = "lambda-req-1"
	if err := s.BeginRequest(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Written ahead, before anything runs, and visible to other readers.
	checkRow(t, "begun request", queryRow(t, db, "SELECT * FROM requests WHERE id = ?", rec.ID), map[string]any{
		"time":         "2025-03-14 14:09:26.535",
		"transport":    "http",
		"transport_id": "lambda-req-1",
		"remote_addr":  "192.0.2.7:51234",
		"method":       "DELETE",
		"path":         "/",
		"query":        "nodes=node[01-02]",
		"action":       "power_off",
		"caller":       "alice",
		"role":         "operator",
		"node_count":   int64(2),
		"status":       nil,
		"error":        nil,
		"duration_ms":  nil,
		"state":        "running",
	})

	ok := newResult("node01")
	notRun := &handler.Result{
		Node:      "node02",
		Platform:  "ipmi",
		Action:    handler.ActionPowerOff,
		Start:     testTime.Add(2 * time.Second),
		ExitCode:  -1,
		State:     handler.StateFailed,
		Error:     "missing variable ipmi_username",
		Stderr:    "partial\x00output",
		Variables: map[string]string{"name": "node02"},
	}
	killed := &handler.Result{
		Node:            "node03",
		Platform:        "ipmi",
		Action:          handler.ActionPowerOff,
		Ran:             true,
		Start:           testTime.Add(3 * time.Second),
		Duration:        30 * time.Second,
		ExitCode:        -1,
		TimedOut:        true,
		State:           handler.StateFailed,
		Stdout:          "lots",
		StdoutTruncated: true,
		StderrTruncated: true,
		Error:           "timed out after 30s",
	}
	missing := &handler.Result{
		Node: "node99", Platform: "missing", Action: handler.ActionPowerOff, Missing: true,
		Start: testTime, ExitCode: -1, State: handler.StateMissing, Error: "unknown node",
	}
	for _, res := range []*handler.Result{ok, notRun, killed, missing} {
		if err := s.RecordResult(ctx, rec.ID, res); err != nil {
			t.Fatal(err)
		}
	}

	rec.Status = 200
	rec.Duration = 31500 * time.Millisecond
	rec.NodeCount = 4
	rec.Error = "3 of 4 nodes failed"
	if err := s.FinishRequest(ctx, rec); err != nil {
		t.Fatal(err)
	}
	checkRow(t, "finished request", queryRow(t, db, "SELECT * FROM requests WHERE id = ?", rec.ID), map[string]any{
		"time":        "2025-03-14 14:09:26.535",
		"node_count":  int64(4),
		"status":      int64(200),
		"error":       "3 of 4 nodes failed",
		"duration_ms": int64(31500),
		"state":       "done",
		"caller":      "alice",
	})

	rows := queryRows(t, db, "SELECT * FROM results WHERE request_id = ? ORDER BY node", rec.ID)
	if len(rows) != 4 {
		t.Fatalf("results: got %d rows, want 4", len(rows))
	}
	for _, c := range []struct {
		name string
		want map[string]any
	}{
		{"success", map[string]any{
			"node": "node01", "platform": "ipmi", "action": "power_off",
			"started_at": "2025-03-14 14:09:27.535", "duration_ms": int64(1234), "exit_code": int64(0),
			"state": "ok", "success": int64(1), "missing": int64(0), "ran": int64(1), "timed_out": int64(0),
			"stdout": "Chassis Power Control: Down/Off\n", "stdout_truncated": int64(0),
			"stderr": nil, "stderr_truncated": int64(0),
			"variables": `{"ipmi_username":"admin","name":"node01"}`, "error": nil,
		}},
		{"not run", map[string]any{
			"node": "node02", "started_at": "2025-03-14 14:09:28.535", "duration_ms": int64(0),
			"exit_code": nil, "state": "failed", "success": int64(0), "ran": int64(0),
			"stderr": "partial\uFFFDoutput", "variables": `{"name":"node02"}`,
			"error": "missing variable ipmi_username",
		}},
		{"killed at the deadline", map[string]any{
			"node": "node03", "duration_ms": int64(30000), "exit_code": nil, "ran": int64(1),
			"timed_out": int64(1), "stdout_truncated": int64(1), "stderr_truncated": int64(1),
			"variables": nil, "error": "timed out after 30s",
		}},
		{"missing", map[string]any{
			"node": "node99", "platform": "missing", "missing": int64(1), "ran": int64(0),
			"exit_code": nil, "state": "missing",
		}},
	} {
		var got map[string]any
		for _, r := range rows {
			if r["node"] == c.want["node"] {
				got = r
			}
		}
		if got == nil {
			t.Errorf("%s: no row for %v", c.name, c.want["node"])
			continue
		}
		checkRow(t, c.name, got, c.want)
	}

	// The audit view joins each result to its request.
	view := queryRows(t, db, "SELECT * FROM audit WHERE request_id = ? AND success = 0 ORDER BY node", rec.ID)
	if len(view) != 3 {
		t.Fatalf("audit view failures: got %d rows, want 3", len(view))
	}
	checkRow(t, "audit view", view[0], map[string]any{
		"time": "2025-03-14 14:09:28.535", "caller": "alice", "remote_addr": "192.0.2.7:51234",
		"transport": "http", "node": "node02", "platform": "ipmi", "action": "power_off", "state": "failed",
		"success": int64(0), "exit_code": nil, "duration_ms": int64(0),
		"error": "missing variable ipmi_username", "request_id": rec.ID,
	})
}

func TestRecordRequest(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	db := rawDB(t, path)
	for _, c := range []struct {
		name string
		rec  handler.RequestRecord
		want map[string]any
	}{
		{
			name: "rejected before routing",
			rec: handler.RequestRecord{
				ID: "r-401", Time: testTime, Transport: "http", RemoteAddr: "198.51.100.1:4000",
				Method: "GET", Path: "/", Status: 401, Error: "token expired", Duration: 2 * time.Millisecond,
			},
			want: map[string]any{
				"action": nil, "caller": nil, "role": nil, "status": int64(401), "error": "token expired",
				"duration_ms": int64(2), "state": "done", "node_count": int64(0), "query": nil,
			},
		},
		{
			name: "listing",
			rec: handler.RequestRecord{
				ID: "r-list", Time: testTime, Transport: "lambda", TransportID: "c0ffee", Method: "GET",
				Path: "/nodes", Action: "list_nodes", Caller: "bob", Role: "viewer", Status: 200,
				Duration: 7 * time.Millisecond, State: handler.RequestRunning,
			},
			want: map[string]any{
				"transport": "lambda", "transport_id": "c0ffee", "action": "list_nodes", "caller": "bob",
				"role": "viewer", "status": int64(200), "error": nil, "duration_ms": int64(7), "state": "done",
			},
		},
		{
			name: "no time given is recorded at now",
			rec:  handler.RequestRecord{ID: "r-notime", Method: "GET", Path: "/", Status: 400},
			want: map[string]any{"recent": int64(1), "state": "done"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := s.RecordRequest(context.Background(), &c.rec); err != nil {
				t.Fatal(err)
			}
			got := queryRow(t, db,
				"SELECT *, time >= datetime('now', '-1 minute') AS recent FROM requests WHERE id = ?", c.rec.ID)
			checkRow(t, c.name, got, c.want)
		})
	}

	// An id used twice is a handler bug, reported, not hidden.
	dup := handler.RequestRecord{ID: "r-list", Time: testTime, Status: 200}
	if err := s.RecordRequest(context.Background(), &dup); err == nil {
		t.Error("recording a duplicate id: got no error")
	}
}

func TestFinishRequestNeverBegun(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	rec := newRequest("r-unbegun")
	rec.Status = 503
	rec.Error = "audit log unavailable"
	if err := s.FinishRequest(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	checkRow(t, "finished, never begun", queryRow(t, rawDB(t, path), "SELECT * FROM requests WHERE id = ?", rec.ID),
		map[string]any{"state": "done", "status": int64(503), "error": "audit log unavailable", "caller": "alice"})
}

func TestRecordResultNeedsItsRequest(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, store.Options{})
	err := s.RecordResult(context.Background(), "no-such-request", newResult("node01"))
	if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("got %v, want a FOREIGN KEY error", err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "record result for no-such-request on node01: ") {
		t.Errorf("got %q, want it wrapped with the request and node", err)
	}
}

func TestWritesOutliveCancelledContext(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := newRequest("r-cancelled")
	if err := s.BeginRequest(ctx, rec); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := s.RecordResult(ctx, rec.ID, newResult("node01")); err != nil {
		t.Fatalf("record result: %v", err)
	}
	rec.Status = 200
	if err := s.FinishRequest(ctx, rec); err != nil {
		t.Fatalf("finish: %v", err)
	}
	db := rawDB(t, path)
	if n := queryInt(t, db, "SELECT count(*) FROM results WHERE request_id = ?", rec.ID); n != 1 {
		t.Errorf("results: got %d, want 1", n)
	}
}

func TestHostileStrings(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	db := rawDB(t, path)
	long := strings.Repeat("a", 10000)
	for _, c := range []struct {
		name string
		edit func(*handler.RequestRecord)
		want map[string]any
	}{
		{"invalid UTF-8 in the path", func(r *handler.RequestRecord) { r.Path = "/\xff\xfe" },
			map[string]any{"path": "/\uFFFD"}}, // one mark per run of bad bytes
		{"NUL in the query", func(r *handler.RequestRecord) { r.Query = "nodes=a\x00b" },
			map[string]any{"query": "nodes=a\uFFFDb"}},
		{"terminal escape in the caller", func(r *handler.RequestRecord) { r.Caller = "eve\x1b[2J" },
			map[string]any{"caller": "eve\uFFFD[2J"}},
		{"long query capped at 4096 bytes", func(r *handler.RequestRecord) { r.Query = long },
			map[string]any{"query": strings.Repeat("a", 4093) + "…"}},
		{"long path capped at 1024 bytes", func(r *handler.RequestRecord) { r.Path = long },
			map[string]any{"path": strings.Repeat("a", 1021) + "…"}},
		{"long remote address capped at 256 bytes", func(r *handler.RequestRecord) { r.RemoteAddr = long },
			map[string]any{"remote_addr": strings.Repeat("a", 253) + "…"}},
		{"long error capped at 1024 bytes", func(r *handler.RequestRecord) { r.Error = long },
			map[string]any{"error": strings.Repeat("a", 1021) + "…"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := newRequest("r-" + strings.ReplaceAll(c.name, " ", "-"))
			rec.Status = 400
			c.edit(rec)
			if err := s.RecordRequest(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			checkRow(t, c.name, queryRow(t, db, "SELECT * FROM requests WHERE id = ?", rec.ID), c.want)
		})
	}

	rec := newRequest("r-hostile-output")
	if err := s.BeginRequest(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	res := newResult("node\x00x")
	res.Stdout = "\x00binary\xff\nline two"
	res.Variables = map[string]string{"name": "a\"b\x00\x1b"}
	if err := s.RecordResult(context.Background(), rec.ID, res); err != nil {
		t.Fatal(err)
	}
	checkRow(t, "hostile output", queryRow(t, db, "SELECT * FROM results WHERE request_id = ?", rec.ID), map[string]any{
		"node":      "node\uFFFDx",
		"stdout":    "\uFFFDbinary\uFFFD\nline two",
		"variables": `{"name":"a\"b\u0000\u001b"}`,
	})
}

func TestSecretsNeverReachTheFile(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	rec := newRequest("r-secret")
	if err := s.BeginRequest(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	// The runner should have redacted these already; the store must not
	// rely on it.
	res := newResult("node01")
	res.Variables = map[string]string{
		"name":          "node01",
		"ipmi_password": "hunter2",
		"API_TOKEN":     "hunter2-token",
		"marker":        "plain-marker-value",
	}
	if err := s.RecordResult(context.Background(), rec.ID, res); err != nil {
		t.Fatal(err)
	}
	checkRow(t, "variables", queryRow(t, rawDB(t, path), "SELECT variables FROM results"), map[string]any{
		"variables": `{"API_TOKEN":"[redacted]","ipmi_password":"[redacted]","marker":"plain-marker-value","name":"node01"}`,
	})

	grep := func(when string) {
		t.Helper()
		var all []byte
		for _, f := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
			b, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		// The marker proves the bytes searched hold the row at all.
		if !bytes.Contains(all, []byte("plain-marker-value")) {
			t.Fatalf("%s: the marker value is not in the files: the search proves nothing", when)
		}
		if bytes.Contains(all, []byte("hunter2")) {
			t.Errorf("%s: got the secret hunter2 in the database files, want it nowhere", when)
		}
	}
	grep("while open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	grep("after close")
}

func TestMarkInterrupted(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	ctx := context.Background()
	writeRequest(t, s, "r-done", 1)
	for _, id := range []string{"r-running-1", "r-running-2"} {
		if err := s.BeginRequest(ctx, newRequest(id)); err != nil {
			t.Fatal(err)
		}
	}
	rejected := newRequest("r-rejected")
	rejected.Status = 403
	if err := s.RecordRequest(ctx, rejected); err != nil {
		t.Fatal(err)
	}

	n, err := s.MarkInterrupted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("first MarkInterrupted: got %d, want 2", n)
	}
	db := rawDB(t, path)
	for _, c := range []struct {
		id   string
		want map[string]any
	}{
		{"r-done", map[string]any{"state": "done", "status": int64(200), "error": nil}},
		{"r-rejected", map[string]any{"state": "done", "status": int64(403), "error": nil}},
		{"r-running-1", map[string]any{"state": "interrupted", "status": nil,
			"error": "interrupted: the server stopped before this request finished"}},
		{"r-running-2", map[string]any{"state": "interrupted", "status": nil}},
	} {
		checkRow(t, c.id, queryRow(t, db, "SELECT * FROM requests WHERE id = ?", c.id), c.want)
	}

	if n, err := s.MarkInterrupted(ctx); err != nil || n != 0 {
		t.Errorf("second MarkInterrupted: got %d, %v, want 0, nil", n, err)
	}
}
