package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/store"
)

func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 12, 19, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		remaining time.Duration // until the invocation's deadline; 0 = none
		timeout   time.Duration
		margin    time.Duration
		want      time.Duration // after start
	}{
		{"API Gateway's limit comes first", 30 * time.Second, 29 * time.Second, 2 * time.Second, 27 * time.Second},
		{"function timeout comes first", 10 * time.Second, 29 * time.Second, 2 * time.Second, 8 * time.Second},
		{"no invocation deadline", 0, 29 * time.Second, 2 * time.Second, 27 * time.Second},
		{"margin capped at half of a short budget", 3 * time.Second, 29 * time.Second, 2 * time.Second, 1500 * time.Millisecond},
		{"no margin", 5 * time.Second, 29 * time.Second, 0, 5 * time.Second},
		{"already past", -time.Second, 29 * time.Second, 2 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := requestDeadline(start, start.Add(tt.remaining), tt.remaining != 0, tt.timeout, tt.margin)
			if got.Sub(start) != tt.want {
				t.Errorf("got start+%s, want start+%s", got.Sub(start), tt.want)
			}
		})
	}
}

// lambdaTopology is the demo sim platform with demo[01-04], a slow node, a
// node that dumps its environment, and a group of the latter.
func lambdaTopology(tb testing.TB) string {
	tb.Helper()
	demo, err := os.ReadFile("../local/etc/demo-topology.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	i := bytes.Index(demo, []byte("\nplatforms:"))
	if i < 0 {
		tb.Fatal("demo topology has no platforms section")
	}
	return `static_nodes:
  demo01: {platform: sim}
  demo02: {platform: sim}
  demo03: {platform: sim}
  demo04: {platform: sim}
  slow01: {platform: sim, sim_delay: "30"}
  probe01: {platform: envdump}
groups:
  probes: [probe01]
` + string(demo[i+1:]) + `
  envdump:
    variables: [name]
    status: env > "env-$name.txt"
`
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// newTestApp builds the function in-process with the topology packaged in
// a temporary "task root" and the audit database in dbDir.
func newTestApp(t *testing.T, dbDir string, env map[string]string) (*app, string, *syncBuffer, *syncBuffer) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "topology.yaml"), []byte(lambdaTopology(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dbDir, "audit.db")
	vars := map[string]string{envSecret: testSecret, envAuditDB: db}
	for k, v := range env {
		vars[k] = v
	}
	var stdout, stderr syncBuffer
	a, closeAudit, err := setup(context.Background(), func(k string) string { return vars[k] }, []string{"PATH=" + os.Getenv("PATH")}, root, &stdout, &stderr)
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, stderr.Bytes())
	}
	t.Cleanup(func() { _ = closeAudit() })
	return a, db, &stdout, &stderr
}

func mint(tb testing.TB, role string) string {
	tb.Helper()
	tok, err := handler.MintToken([]byte(testSecret), "tester-"+role, role, time.Hour, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// TestInvokeDeadline: a node still running when the invocation's time runs
// out is killed, answered and recorded as timed out, and the answer comes
// back before the invocation's deadline.
func TestInvokeDeadline(t *testing.T) {
	t.Parallel()
	a, db, stdout, _ := newTestApp(t, t.TempDir(), nil)

	ev := fixture(t, "http-api-v2-status-slow.json", map[string]string{"VIEWER_TOKEN": mint(t, "viewer")})
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "inproc-slow-1"})
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second) // the function's timeout
	defer cancel()
	deadline, _ := ctx.Deadline()

	out, err := a.Invoke(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().After(deadline) {
		t.Errorf("answered %s after the invocation deadline", time.Since(deadline))
	}
	var resp struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       string            `json:"body"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %s, want 200", resp.StatusCode, resp.Body)
	}
	var body handler.Document[handler.CommandAttributes]
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	if len(body.Data) != 2 {
		t.Fatalf("got %d nodes, want 2: %s", len(body.Data), resp.Body)
	}
	slow, fast := body.Data[0].Attributes, body.Data[1].Attributes
	if !slow.TimedOut || slow.Success || slow.State != handler.StateUnknown || !strings.Contains(slow.Error, "deadline") {
		t.Errorf("slow01: got %+v, want timed out, unknown, a deadline error", slow)
	}
	if !fast.Success || fast.State != handler.StateOff {
		t.Errorf("demo03: got %+v, want off", fast)
	}

	sdb, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var transport, transportID, state string
	var timedOut int
	err = sdb.QueryRow(`SELECT r.transport, r.transport_id, r.state, s.timed_out FROM requests r JOIN results s ON s.request_id = r.id WHERE s.node = 'slow01'`).
		Scan(&transport, &transportID, &state, &timedOut)
	if err != nil {
		t.Fatal(err)
	}
	if transport != "lambda" || transportID != "inproc-slow-1" || state != "done" || timedOut != 1 {
		t.Errorf("audit db: got %s %s %s timed_out=%d, want lambda inproc-slow-1 done 1", transport, transportID, state, timedOut)
	}
	if !bytes.Contains(stdout.Bytes(), []byte(`"node":"slow01"`)) || !bytes.Contains(stdout.Bytes(), []byte(`"timed_out":true`)) {
		t.Errorf("no JSON line for the timed-out node:\n%s", stdout.Bytes())
	}
}

func TestSetupMarksInterruptedOnlyInTmp(t *testing.T) {
	t.Parallel()
	shared, err := os.MkdirTemp("/var/tmp", "flight-power-lambda-test")
	if err != nil {
		t.Skipf("no folder outside /tmp to stand for EFS: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	local := t.TempDir()
	if !strings.HasPrefix(local, "/tmp/") {
		t.Skipf("t.TempDir is %s, not under /tmp", local)
	}

	for _, tt := range []struct {
		dir  string
		want string
	}{
		{local, handler.RequestInterrupted},
		{shared, handler.RequestRunning},
	} {
		db := filepath.Join(tt.dir, "audit.db")
		st, err := store.Open(context.Background(), db, store.Options{JournalMode: store.JournalDelete})
		if err != nil {
			t.Fatal(err)
		}
		rec := &handler.RequestRecord{ID: "01JLEFTRUNNING", Time: time.Now(), Transport: handler.TransportLambda, Method: "PATCH", Path: "/", State: handler.RequestRunning}
		if err := st.BeginRequest(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		st.Close()

		newTestApp(t, tt.dir, map[string]string{envJournalMode: store.JournalDelete})
		sdb, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var state string
		if err := sdb.QueryRow(`SELECT state FROM requests WHERE id = '01JLEFTRUNNING'`).Scan(&state); err != nil {
			t.Fatal(err)
		}
		sdb.Close()
		if state != tt.want {
			t.Errorf("audit db in %s: got %s, want %s", tt.dir, state, tt.want)
		}
	}
}

func TestSetupFailsClearly(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	bad := filepath.Join(root, "bad.yaml")
	if err := os.WriteFile(bad, []byte("static_nodes:\n  n1: {platform: sim}\nplatfroms: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(root, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(root, "good.yaml")
	if err := os.WriteFile(good, []byte(lambdaTopology(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no secret", map[string]string{}, []string{envSecret, "not set"}},
		{"no packaged topology", map[string]string{envSecret: testSecret}, []string{envTopology, filepath.Join(root, "topology.yaml")}},
		{"bad topology", map[string]string{envSecret: testSecret, envTopology: bad}, []string{envTopology, "bad.yaml:3", "platfroms"}},
		{"unusable audit db", map[string]string{envSecret: testSecret, envTopology: good, envAuditDB: filepath.Join(notDir, "audit.db")}, []string{envAuditDB, "audit db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			_, _, err := setup(context.Background(), func(k string) string { return tt.env[k] }, nil, root, &stdout, &stderr)
			if err == nil {
				t.Fatal("setup succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
