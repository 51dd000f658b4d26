package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// These tests run the built flight-power-server binary on a free loopback
// port, talk to it over real HTTP, and read its audit log with the real
// sqlite3 shell.

var serverBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if w := flag.Lookup("test.fuzzworker"); w != nil && w.Value.String() == "true" {
		// A fuzzing worker runs one fuzz target and no server.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "flight-power-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "flight-power-server")
	build := exec.Command("go", "build", "-o", serverBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build flight-power-server: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const e2eSecret = "e2e-secret-e2e-secret-e2e-secret-0123456789"

// simTopology is the shipped demo platform with n nodes named
// node[01-n] and two groups.
func simTopology(tb testing.TB, n int, extraOptional string) string {
	tb.Helper()
	i := bytes.Index(demoTopology, []byte("\nplatforms:"))
	if i < 0 {
		tb.Fatal("demo topology has no platforms section")
	}
	var b strings.Builder
	b.WriteString("static_nodes:\n")
	for k := 1; k <= n; k++ {
		fmt.Fprintf(&b, "  node%02d: {platform: sim%s}\n", k, extraOptional)
	}
	fmt.Fprintf(&b, "  ghostplat: {platform: nosuch}\n")
	fmt.Fprintf(&b, "groups:\n  first: [\"node[01-05]\"]\n  evens: [\"node[02,04,06]\"]\n")
	b.Write(demoTopology[i:])
	return b.String()
}

type server struct {
	tb       testing.TB
	dir      string
	conf     string
	db       string
	stateDir string
	url      string
	cmd      *exec.Cmd
	stderr   *syncBuffer
	done     chan error
	env      []string // added to the server's environment, winning over the test's own
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newServerFiles writes a conf and topology in a temp dir.
func newServerFiles(tb testing.TB, topology string, extraConf string) *server {
	tb.Helper()
	dir := tb.TempDir()
	s := &server{tb: tb, dir: dir, conf: filepath.Join(dir, "power-server.conf"), db: filepath.Join(dir, "audit.db"), stateDir: filepath.Join(dir, "sim-state")}
	writeFile(tb, filepath.Join(dir, "topology.yaml"), topology, 0o644)
	conf := fmt.Sprintf("jwt_shared_secret='%s'\ntopology_config=topology.yaml\naudit_db=audit.db\nlisten=127.0.0.1:0\nshutdown_grace=20s\n%s", e2eSecret, extraConf)
	writeFile(tb, s.conf, conf, 0o600)
	return s
}

func writeFile(tb testing.TB, path, data string, perm os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		tb.Fatal(err)
	}
}

var listenRE = regexp.MustCompile(`addr=(\S+)`)

// start runs the server and waits until it listens.
func (s *server) start() {
	s.tb.Helper()
	s.stderr = &syncBuffer{}
	s.cmd = exec.Command(serverBin, "serve", "--config", s.conf)
	s.cmd.Stderr = s.stderr
	s.cmd.Env = append(append(os.Environ(), "FLIGHT_POWER_TEST_MARKER=1"), s.env...)
	if err := s.cmd.Start(); err != nil {
		s.tb.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	s.tb.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenRE.FindStringSubmatch(s.stderr.String()); m != nil && strings.Contains(s.stderr.String(), "listening") {
			s.url = "http://" + m[1]
			return
		}
		select {
		case err := <-s.done:
			s.tb.Fatalf("server exited early: %v\n%s", err, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.tb.Fatalf("server did not start listening:\n%s", s.stderr.String())
}

// stop sends sig and waits for the exit.
func (s *server) stop(sig syscall.Signal) error {
	s.tb.Helper()
	_ = s.cmd.Process.Signal(sig)
	select {
	case err := <-s.done:
		return err
	case <-time.After(60 * time.Second):
		s.tb.Fatalf("server did not exit after %v", sig)
		return nil
	}
}

func (s *server) token(role string) string {
	s.tb.Helper()
	tok, err := handler.MintToken([]byte(e2eSecret), "e2e-"+role, role, time.Hour, time.Now())
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (s *server) do(method, pathQuery, token string) reply {
	s.tb.Helper()
	req, err := http.NewRequest(method, s.url+pathQuery, nil)
	if err != nil {
		s.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, pathQuery, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, body}
}

func (r reply) commands(tb testing.TB) []handler.Resource[handler.CommandAttributes] {
	tb.Helper()
	var doc handler.Document[handler.CommandAttributes]
	if err := json.Unmarshal(r.body, &doc); err != nil {
		tb.Fatalf("decode %s: %v", r.body, err)
	}
	return doc.Data
}

// sql runs a query with the real sqlite3 shell and returns its rows.
func sql(tb testing.TB, db, query string) []string {
	tb.Helper()
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", "-separator", "|", db, query).CombinedOutput()
	if err != nil {
		tb.Fatalf("sqlite3 %q: %v\n%s", query, err, out)
	}
	var rows []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		rows = append(rows, sc.Text())
	}
	return rows
}

func sqlOne(tb testing.TB, db, query string) string {
	tb.Helper()
	rows := sql(tb, db, query)
	if len(rows) != 1 {
		tb.Fatalf("%s: got %d rows %q, want 1", query, len(rows), rows)
	}
	return rows[0]
}

func requireSqlite3(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		tb.Fatal("sqlite3 shell not installed: run `make deps` (make test does)")
	}
}

func TestEveryRouteEndToEnd(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, simTopology(t, 12, ""), "")
	s.start()
	op, viewer := s.token("operator"), s.token("viewer")

	r := s.do("GET", "/nodes", viewer)
	if r.status != 200 {
		t.Fatalf("GET /nodes: %d %s", r.status, r.body)
	}
	var nodes handler.Document[handler.NodeAttributes]
	if err := json.Unmarshal(r.body, &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Data) != 13 || nodes.Data[0].ID != "ghostplat" || nodes.Data[1].ID != "node01" {
		t.Errorf("GET /nodes: got %d nodes starting %+v", len(nodes.Data), nodes.Data[:2])
	}
	if bytes.Contains(r.body, []byte("sim-state")) {
		t.Errorf("GET /nodes leaks variable values: %s", r.body)
	}

	r = s.do("GET", "/groups", viewer)
	if want := `{"data":[{"type":"groups","id":"evens","attributes":{"name":"evens","nodes":["node02","node04","node06"]}},{"type":"groups","id":"first","attributes":{"name":"first","nodes":["node01","node02","node03","node04","node05"]}}]}` + "\n"; string(r.body) != want {
		t.Errorf("GET /groups: got %s, want %s", r.body, want)
	}

	steps := []struct {
		method, query string
		wantState     map[string]string // node -> state in the answer
	}{
		{"GET", "?nodes=node[01-03]", map[string]string{"node01": "off", "node02": "off", "node03": "off"}},
		{"PATCH", "?groups=first", map[string]string{"node01": "ok", "node05": "ok"}},
		{"GET", "?nodes=node[04-06]", map[string]string{"node04": "on", "node05": "on", "node06": "off"}},
		{"DELETE", "?groups=evens", map[string]string{"node02": "ok", "node06": "ok"}},
		{"GET", "?nodes=node[01-02]&groups=evens", map[string]string{"node01": "on", "node02": "off", "node04": "off"}},
		{"PUT", "?nodes=node02,ghost,ghostplat", map[string]string{"node02": "ok", "ghost": "missing", "ghostplat": "failed"}},
		{"GET", "?nodes=node02", map[string]string{"node02": "on"}},
	}
	for _, st := range steps {
		r := s.do(st.method, "/"+st.query, op)
		if r.status != 200 {
			t.Fatalf("%s %s: %d %s", st.method, st.query, r.status, r.body)
		}
		got := map[string]handler.CommandAttributes{}
		for _, d := range r.commands(t) {
			got[d.ID] = d.Attributes
		}
		for node, want := range st.wantState {
			if got[node].State != want {
				t.Errorf("%s %s: %s state got %q (error %q), want %q", st.method, st.query, node, got[node].State, got[node].Error, want)
			}
		}
		if id := r.header.Get("X-Request-Id"); sqlOne(t, s.db, "SELECT count(*) FROM requests WHERE id='"+id+"'") != "1" {
			t.Errorf("%s %s: X-Request-Id %s not in the audit log", st.method, st.query, id)
		}
	}
	// the state files agree with the answers
	for node, want := range map[string]string{"node01": "on", "node02": "on", "node04": "off", "node05": "on", "node06": "off"} {
		b, _ := os.ReadFile(filepath.Join(s.stateDir, node))
		if strings.TrimSpace(string(b)) != want {
			t.Errorf("state file %s: got %q, want %q", node, b, want)
		}
	}
	if _, err := os.Stat(filepath.Join(s.stateDir, "node07")); err == nil {
		t.Errorf("node07 was never targeted but has a state file")
	}
}

func TestTwoHundredNodesAndAuditRows(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, simTopology(t, 200, ""), "")
	s.start()
	op := s.token("operator")

	// rejected and odd requests, each exactly one audit row
	rejects := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/?nodes=node01", "", 401},
		{"GET", "/?nodes=node01", "not-a-token", 401},
		{"GET", "/?nodes=node[1-", op, 400},
		{"GET", "/nosuch", op, 404},
		{"POST", "/", op, 405},
		{"PATCH", "/?nodes=node01", s.token("viewer"), 403},
	}
	for _, rj := range rejects {
		r := s.do(rj.method, rj.path, rj.token)
		if r.status != rj.want {
			t.Errorf("%s %s: got %d, want %d (%s)", rj.method, rj.path, r.status, rj.want, r.body)
		}
		id := r.header.Get("X-Request-Id")
		if got := sqlOne(t, s.db, "SELECT status||'|'||state||'|'||(error<>'') FROM requests WHERE id='"+id+"'"); got != fmt.Sprintf("%d|done|1", rj.want) {
			t.Errorf("%s %s: audit row got %q", rj.method, rj.path, got)
		}
		if n := sqlOne(t, s.db, "SELECT count(*) FROM results WHERE request_id='"+id+"'"); n != "0" {
			t.Errorf("%s %s: %s result rows for a rejected request", rj.method, rj.path, n)
		}
	}

	on := s.do("PATCH", "/?nodes=node[001-100]", op) // padded to 3 digits: only node100 exists
	if n := len(on.commands(t)); n != 100 {
		t.Fatalf("PATCH node[001-100]: got %d results", n)
	}
	on = s.do("PATCH", "/?nodes=node[01-100]", op)
	for _, d := range on.commands(t) {
		if !d.Attributes.Success {
			t.Fatalf("power on %s: %+v", d.ID, d.Attributes)
		}
	}
	st := s.do("GET", "/?nodes=node[01-200]", op)
	res := st.commands(t)
	if len(res) != 200 {
		t.Fatalf("status: got %d results, want 200", len(res))
	}
	for i, d := range res {
		wantOn := i < 100
		b, _ := os.ReadFile(filepath.Join(s.stateDir, d.ID))
		fileOn := strings.TrimSpace(string(b)) == "on"
		if fileOn != wantOn || d.Attributes.Running.Value == nil || *d.Attributes.Running.Value != wantOn {
			t.Errorf("%s: running %v, state file on=%v, want on=%v", d.ID, d.Attributes.Running.Value, fileOn, wantOn)
		}
	}
	off := s.do("DELETE", "/?nodes=node[51-150]", op)
	rs := s.do("PUT", "/?nodes=node[141-160]", op)
	st2 := s.do("GET", "/?nodes=node[01-200]", op)
	onCount := 0
	for _, d := range st2.commands(t) {
		if d.Attributes.State == "on" {
			onCount++
		}
	}
	if onCount != 70 { // 1-50 and 141-160
		t.Errorf("nodes on after off+restart: got %d, want 70", onCount)
	}

	// one result row per node command, per request
	for _, c := range []struct {
		r    reply
		want string
	}{{on, "100"}, {st, "200"}, {off, "100"}, {rs, "20"}, {st2, "200"}} {
		id := c.r.header.Get("X-Request-Id")
		if got := sqlOne(t, s.db, "SELECT count(*)||'|'||count(DISTINCT node) FROM results WHERE request_id='"+id+"'"); got != c.want+"|"+c.want {
			t.Errorf("request %s: result rows got %s, want %s", id, got, c.want)
		}
		if got := sqlOne(t, s.db, "SELECT status||'|'||state||'|'||node_count FROM requests WHERE id='"+id+"'"); got != "200|done|"+c.want {
			t.Errorf("request %s: row got %s", id, got)
		}
	}
	if got := sqlOne(t, s.db, "SELECT count(*) FROM requests"); got != fmt.Sprint(len(rejects)+6) {
		t.Errorf("requests rows: got %s, want %d", got, len(rejects)+6)
	}
	if got := sqlOne(t, s.db, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check: %s", got)
	}
}

// The README's ready-made queries, run as written, return what happened.
func TestReadmeQueries(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, simTopology(t, 10, ""), "")
	s.start()
	alice, _ := handler.MintToken([]byte(e2eSecret), "alice", "operator", time.Hour, time.Now())
	bob, _ := handler.MintToken([]byte(e2eSecret), "bob", "operator", time.Hour, time.Now())
	s.do("PATCH", "/?nodes=node[01-10]", alice)
	s.do("DELETE", "/?nodes=node07", bob)
	s.do("DELETE", "/?nodes=node[06-08]", alice)
	s.do("GET", "/?nodes=node07,ghost", bob)
	s.do("GET", "/?nodes=node07", "")

	queries := readmeQueries(t)
	for title, q := range queries {
		sql(t, s.db, q) // every README query runs as written
		_ = title
	}
	check := func(title string, want func(rows []string) string) {
		q, ok := queries[title]
		if !ok {
			t.Errorf("README has no query titled %q (have %v)", title, keys(queries))
			return
		}
		if msg := want(sql(t, s.db, q)); msg != "" {
			t.Errorf("README query %q: %s", title, msg)
		}
	}
	check("Who powered off node07", func(rows []string) string {
		if len(rows) != 2 || !strings.Contains(rows[0], "alice") || !strings.Contains(rows[1], "bob") {
			return fmt.Sprintf("got %q, want alice's then bob's power_off (newest first)", rows)
		}
		return ""
	})
	check("Everything that failed today", func(rows []string) string {
		if len(rows) != 1 || !strings.Contains(rows[0], "ghost") {
			return fmt.Sprintf("got %q, want the one failure (ghost)", rows)
		}
		return ""
	})
	check("A node's history", func(rows []string) string {
		if len(rows) != 4 || !strings.Contains(rows[0], "status") {
			return fmt.Sprintf("got %d rows %q, want node07's 4 results, newest (status) first", len(rows), rows)
		}
		return ""
	})
	check("Rejected requests", func(rows []string) string {
		if len(rows) != 1 || !strings.Contains(rows[0], "401") {
			return fmt.Sprintf("got %q, want the one 401", rows)
		}
		return ""
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// readmeQueries returns the README's ```sql blocks keyed by their first
// line's "-- Title" comment.
func readmeQueries(tb testing.TB) map[string]string {
	tb.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	re := regexp.MustCompile("(?s)```sql\n-- ([^\n]+)\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out[strings.TrimSpace(m[1])] = m[2]
	}
	return out
}

func TestKill9MidRequestIsMarkedInterrupted(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, simTopology(t, 20, ", sim_delay: 3"), "num_worker_commands=10\n")
	s.start()
	op := s.token("operator")
	go func() {
		req, _ := http.NewRequest("PATCH", s.url+"/?nodes=node[01-20]", nil)
		req.Header.Set("Authorization", "Bearer "+op)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, 10*time.Second, func() bool {
		return sqlOne(t, s.db, "SELECT count(*) FROM requests WHERE state='running'") == "1"
	})
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.cmd.ProcessState = &os.ProcessState{} // let cleanup know it is gone
	if got := sqlOne(t, s.db, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("integrity_check after kill -9: %s", got)
	}
	s.start()
	if got := sqlOne(t, s.db, "SELECT state||'|'||(error LIKE 'interrupted%') FROM requests WHERE method='PATCH'"); got != "interrupted|1" {
		t.Errorf("killed request: got %q, want interrupted", got)
	}
	if !strings.Contains(s.stderr.String(), "interrupted") {
		t.Errorf("restart log does not mention the interrupted request:\n%s", s.stderr.String())
	}
	if got := sqlOne(t, s.db, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check after restart: %s", got)
	}
	_ = s.stop(syscall.SIGTERM)
}

func TestSigtermLetsRunningRequestFinish(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, simTopology(t, 6, ", sim_delay: 1.5"), "")
	s.start()
	op := s.token("operator")
	got := make(chan reply, 1)
	go func() { got <- s.do("PATCH", "/?nodes=node[01-06]", op) }()
	waitFor(t, 10*time.Second, func() bool {
		return sqlOne(t, s.db, "SELECT count(*) FROM requests WHERE state='running'") == "1"
	})
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0\n%s", err, s.stderr.String())
	}
	r := <-got
	if r.status != 200 || len(r.commands(t)) != 6 {
		t.Fatalf("request during SIGTERM: %d %s", r.status, r.body)
	}
	for _, d := range r.commands(t) {
		if !d.Attributes.Success {
			t.Errorf("%s: %+v", d.ID, d.Attributes)
		}
	}
	if got := sqlOne(t, s.db, "SELECT state||'|'||status||'|'||(SELECT count(*) FROM results WHERE request_id=requests.id AND success=1) FROM requests WHERE method='PATCH'"); got != "done|200|6" {
		t.Errorf("audit after SIGTERM: got %q, want done|200|6", got)
	}
}

func waitFor(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("condition not met within %v", d)
}

func TestConfAndSubcommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc", "power-server.conf")
	runBin := func(args ...string) (string, int) {
		cmd := exec.Command(serverBin, args...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := runBin("init", "--config", conf, "--audit_db", filepath.Join(dir, "audit.db"))
	if code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	fi, err := os.Stat(conf)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("conf mode: %v %v, want 0600", fi.Mode(), err)
	}
	first, _ := os.ReadFile(conf)
	out, code = runBin("init", "--config", conf)
	after, _ := os.ReadFile(conf)
	if code != 0 || !bytes.Equal(first, after) || !strings.Contains(out, "kept existing") {
		t.Errorf("second init overwrote or failed: %d %s", code, out)
	}
	topo := filepath.Join(dir, "etc", "power-server", "topology.yaml")
	out, code = runBin("check", "--config", conf)
	if code != 0 || !strings.Contains(out, "ok: 3 nodes") {
		t.Errorf("check default topology: %d %s", code, out)
	}
	tok, code := runBin("token", "--config", conf, "--subject", "carol", "--role", "viewer", "--days", "2")
	if code != 0 {
		t.Fatalf("token: %d %s", code, tok)
	}
	m := regexp.MustCompile(`jwt_shared_secret='([0-9a-f]+)'`).FindSubmatch(first)
	if m == nil || len(m[1]) < 64 {
		t.Fatalf("conf secret: %s", first)
	}
	var c handler.Claims
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	raw, _ := base64URLDecode(parts[1])
	if err := json.Unmarshal(raw, &c); err != nil || c.Subject != "carol" || c.Role != "viewer" || c.ExpiresAt == nil ||
		c.ExpiresAt.Sub(time.Now()) < 47*time.Hour || c.ExpiresAt.Sub(time.Now()) > 49*time.Hour {
		t.Errorf("token claims: %+v %v", c, err)
	}
	// a broken topology: every problem with its line, exit 1
	writeFile(t, topo, "static_nodes:\n  a: {platform: p, name: x}\nplatforms:\n  p:\n    variables: [v]\n    power_of: x\nbogus: 1\n", 0o644)
	out, code = runBin("check", "--config", conf)
	if code != 1 || !strings.Contains(out, ":2:") || !strings.Contains(out, ":6:") || !strings.Contains(out, ":7:") {
		t.Errorf("check broken topology: exit %d, want 1 and lines 2, 6, 7:\n%s", code, out)
	}
	// the secret may not travel in argv
	out, code = runBin("serve", "--config", conf, "--jwt_shared_secret", "x")
	if code != 2 || !strings.Contains(out, "visible to every user") {
		t.Errorf("secret in argv: exit %d %s", code, out)
	}
	// a short secret is refused with the reason
	short := filepath.Join(dir, "short.conf")
	writeFile(t, short, "jwt_shared_secret=tooshort\n", 0o600)
	out, code = runBin("serve", "--config", short)
	if code != 2 || !strings.Contains(out, "at least 32") {
		t.Errorf("short secret: exit %d %s", code, out)
	}
	out, code = runBin("frobnicate")
	if code != 2 || !strings.Contains(out, "unknown subcommand") {
		t.Errorf("unknown subcommand: exit %d %s", code, out)
	}
}

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
