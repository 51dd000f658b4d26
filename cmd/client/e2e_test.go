package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// These tests run the built flight-power client against the built
// flight-power-server (./cmd/local) on a free loopback port, over real
// HTTP, with the demo topology's sim platform doing the power work.

var (
	clientBin string
	serverBin string
	update    = flag.Bool("update", false, "rewrite the golden files under testdata/")
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "flight-power-client-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clientBin = filepath.Join(dir, "flight-power")
	serverBin = filepath.Join(dir, "flight-power-server")
	for bin, pkg := range map[string]string{clientBin: ".", serverBin: "../local"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSecret = "client-e2e-secret-client-e2e-secret-0123"

// testTopology is the demo topology's sim platform with node01..node12,
// a node on an undefined platform, a node whose BMC never answers, a slow
// node, and three groups.
func testTopology(tb testing.TB) string {
	tb.Helper()
	demo, err := os.ReadFile("../local/etc/demo-topology.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	i := bytes.Index(demo, []byte("\nplatforms:"))
	if i < 0 {
		tb.Fatal("demo topology has no platforms section")
	}
	var b strings.Builder
	b.WriteString("static_nodes:\n")
	for k := 1; k <= 12; k++ {
		fmt.Fprintf(&b, "  node%02d: {platform: sim}\n", k)
	}
	b.WriteString("  ghostplat: {platform: nosuch}\n")
	b.WriteString("  bad01: {platform: broken}\n")
	b.WriteString("  slow01: {platform: sim, sim_delay: 3}\n")
	b.WriteString("groups:\n  first: [\"node[01-05]\"]\n  evens: [\"node[02,04,06]\"]\n  broken: [bad01]\n")
	b.Write(bytes.TrimRight(demo[i:], "\n"))
	b.WriteString(`
  broken:
    variables: [name]
    power_on: echo "BMC of $name is not answering" >&2; exit 1
    power_off: echo "BMC of $name is not answering" >&2; exit 1
    restart: echo "BMC of $name is not answering" >&2; exit 1
    status: echo "BMC of $name is not answering" >&2; exit 3
`)
	return b.String()
}

type server struct {
	tb     testing.TB
	dir    string
	db     string
	url    string
	cmd    *exec.Cmd
	stderr *syncBuffer
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

var listenRE = regexp.MustCompile(`addr=(\S+)`)

// startServer runs flight-power-server on a free port with the test
// topology and waits until it listens.
func startServer(tb testing.TB) *server {
	tb.Helper()
	dir := tb.TempDir()
	s := &server{tb: tb, dir: dir, db: filepath.Join(dir, "audit.db"), stderr: &syncBuffer{}}
	writeFile(tb, filepath.Join(dir, "topology.yaml"), testTopology(tb))
	conf := filepath.Join(dir, "power-server.conf")
	writeFile(tb, conf, fmt.Sprintf("jwt_shared_secret='%s'\ntopology_config=topology.yaml\naudit_db=audit.db\nlisten=127.0.0.1:0\nshutdown_grace=1s\n", testSecret))
	s.cmd = exec.Command(serverBin, "serve", "--config", conf)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	tb.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		log := s.stderr.String()
		if m := listenRE.FindStringSubmatch(log); m != nil && strings.Contains(log, "listening") {
			s.url = "http://" + m[1]
			return s
		}
		select {
		case err := <-done:
			tb.Fatalf("server exited early: %v\n%s", err, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	tb.Fatalf("server did not start listening:\n%s", s.stderr.String())
	return nil
}

func (s *server) token(role string) string {
	s.tb.Helper()
	tok, err := handler.MintToken([]byte(testSecret), "client-e2e", role, time.Hour, time.Now())
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

// expiredToken expired at 2024-01-01T01:00:00Z, so messages that show it
// are the same on every run.
func (s *server) expiredToken() string {
	s.tb.Helper()
	tok, err := handler.MintToken([]byte(testSecret), "client-e2e", "", time.Hour, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

// config writes a config.yaml for this server and returns its path.
func (s *server) config(tb testing.TB, token string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "config.yaml")
	writeFile(tb, path, fmt.Sprintf("# written by the test\nbase_url: %s\njwt_token: %s\n", s.url, token))
	return path
}

func writeFile(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

// runClient runs the client with only PATH, an empty HOME and env in its
// environment, so that the developer's own config never leaks in.
func runClient(tb testing.TB, env []string, args ...string) result {
	tb.Helper()
	cmd := exec.Command(clientBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + tb.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// freePort returns a loopback address nothing listens on.
func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func requireSqlite3(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		tb.Fatal("sqlite3 shell not installed: run `make deps` (make test does)")
	}
}

func sqlOne(tb testing.TB, db, query string) string {
	tb.Helper()
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", db, query).CombinedOutput()
	if err != nil {
		tb.Fatalf("sqlite3 %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s: not within %v", what, d)
}

// The golden files hold the human output of a session that walks every
// command, in order, against one server. The server's address is written
// as http://SERVER.
func TestHumanOutputGolden(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	env := []string{"FLIGHT_POWER_CONFIG=" + s.config(t, s.token("operator"))}
	steps := []struct {
		name string
		args []string
		code int
	}{
		{"list", []string{"list"}, 0},
		{"list-groups", []string{"list", "--groups"}, 0},
		{"list-groups-verbose", []string{"list", "-g", "--verbose"}, 0},
		{"status-all-off", []string{"status", "node[01-03]"}, 0},
		{"status-one", []string{"status", "node01"}, 0},
		{"on-groups", []string{"on", "--groups", "first"}, 0},
		{"status-several-targets", []string{"status", "node[04-06]", "node01"}, 0},
		{"off-groups-flag-after", []string{"off", "evens", "-g"}, 0},
		{"status-failures", []string{"status", "node[01-02]", "bad01", "ghost07", "ghost42"}, 1},
		{"on-failures", []string{"on", "node07", "ghostplat", "bad01", "ghost"}, 1},
		{"off-one-failure", []string{"off", "bad01"}, 1},
		{"restart-mixed", []string{"restart", "node[02-03]", "bad01"}, 1},
		{"restart-groups", []string{"restart", "--groups", "evens"}, 0},
		{"status-no-targets", []string{"status"}, 2},
	}
	for _, st := range steps {
		r := runClient(t, env, st.args...)
		if r.code != st.code {
			t.Errorf("%s: exit got %d, want %d\n%s", st.name, r.code, st.code, r)
		}
		got := fmt.Sprintf("$ flight-power %s\n--- stdout\n%s--- stderr\n%s--- exit %d\n",
			strings.Join(st.args, " "), r.stdout, r.stderr, r.code)
		got = strings.ReplaceAll(got, s.url, "http://SERVER")
		golden(t, st.name, got)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	op := s.config(t, s.token("operator"))
	viewer := s.config(t, s.token("viewer"))
	expired := s.config(t, s.expiredToken())
	unreachable := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, unreachable, "base_url: http://"+freePort(t)+"\njwt_token: "+s.token("operator")+"\n")
	cases := []struct {
		name   string
		config string
		args   []string
		code   int
		stderr string // a part of the one-line message
	}{
		{"all succeed", op, []string{"status", "node[01-04]"}, 0, "4 nodes: 4 off"},
		{"viewer may ask status", viewer, []string{"status", "node01"}, 0, ""},
		{"viewer may list", viewer, []string{"list"}, 0, ""},
		{"a node not in the topology", op, []string{"status", "node01", "ghost"}, 1, "1 failed: ghost"},
		{"a node whose command fails", op, []string{"on", "bad01"}, 1, ""},
		{"an undefined platform", op, []string{"restart", "ghostplat"}, 1, ""},
		{"no targets", op, []string{"on"}, 2, "on needs at least one node hostlist"},
		{"unknown flag", op, []string{"status", "node01", "--frobnicate"}, 2, "flag provided but not defined: -frobnicate"},
		{"unknown command", op, []string{"powercycle", "node01"}, 2, `unknown command "powercycle"`},
		{"list takes no targets", op, []string{"list", "node01"}, 2, "list takes no arguments"},
		{"verbose without groups", op, []string{"list", "--verbose"}, 2, "use it with --groups"},
		{"bad hostlist syntax", op, []string{"status", "node[1-"}, 2, `the server refused the request: nodes: hostlist "node[1-": unclosed '['`},
		{"unknown group", op, []string{"off", "-g", "nosuch"}, 2, "group nosuch is not defined"},
		{"bad timeout", op, []string{"status", "node01", "--timeout", "soon"}, 2, `status: invalid value "soon" for flag -timeout: want a duration like 90s or 5m, got "soon"`},
		{"server unreachable", unreachable, []string{"status", "node01"}, 3, "cannot reach the server at http://127.0.0.1:"},
		{"bad token", op, []string{"status", "node01", "--jwt_token", "not-a-token"}, 3, "token rejected by " + s.url + ": token is malformed: mint a new one with flight-power-server token (jwt_token from --jwt_token)"},
		{"expired token", expired, []string{"list"}, 3, "token rejected by " + s.url + ": token expired on 2024-01-01T01:00:00Z: mint a new one with flight-power-server token (jwt_token from " + expired + ")"},
		{"role too low", viewer, []string{"on", "node01"}, 3, "You do not have permission: PATCH / needs the operator role; this token has the viewer role"},
		{"not a flight-power route", op, []string{"list", "--base_url", s.url + "/prefix"}, 3, s.url + "/prefix answered 404 Not Found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runClient(t, []string{"FLIGHT_POWER_CONFIG=" + c.config}, c.args...)
			if r.code != c.code {
				t.Errorf("exit got %d, want %d\n%s", r.code, c.code, r)
			}
			if !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("stderr got %q, want it to contain %q", r.stderr, c.stderr)
			}
			if c.code >= 2 {
				if r.stdout != "" {
					t.Errorf("stdout got %q, want nothing on an error", r.stdout)
				}
				if n := strings.Count(r.stderr, "\n"); n != 1 {
					t.Errorf("stderr has %d lines, want one:\n%s", n, r.stderr)
				}
			}
		})
	}
}

// A 503 is what the server answers when its audit log cannot be written:
// provoke it by holding the database's write lock with the sqlite3 shell.
func TestServerErrorIsExit3(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := startServer(t)
	cfg := s.config(t, s.token("operator"))
	if r := runClient(t, []string{"FLIGHT_POWER_CONFIG=" + cfg}, "list"); r.code != 0 {
		t.Fatalf("list before the lock: %s", r)
	}
	lock := exec.Command("sqlite3", s.db)
	stdin, err := lock.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := lock.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = lock.Wait()
	}()
	if _, err := io.WriteString(stdin, ".timeout 5000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("sqlite3 did not take the lock: %q %v", line, err)
	}
	r := runClient(t, []string{"FLIGHT_POWER_CONFIG=" + cfg}, "list")
	want := "flight-power: server error from " + s.url + ": 503 Service Unavailable: audit log unavailable"
	if r.code != 3 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("list with the audit log locked: got %s\nwant exit 3 and %q", r, want)
	}
}

// The config file, FLIGHT_POWER_* and flags each win in turn.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	good := s.token("operator")
	dead := "http://" + freePort(t)
	fileWith := func(baseURL, token string) string {
		path := filepath.Join(t.TempDir(), "config.yaml")
		writeFile(t, path, "base_url: "+baseURL+"\njwt_token: "+token+"\n")
		return path
	}
	goodFile := fileWith(s.url, good)
	deadFile := fileWith(dead, good)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".config", "flight-power", "config.yaml"), "base_url: "+s.url+"\njwt_token: "+good+"\n")

	cases := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"the file alone", []string{"FLIGHT_POWER_CONFIG=" + goodFile}, nil, 0, ""},
		{"~/.config/flight-power/config.yaml", []string{"HOME=" + home}, nil, 0, ""},
		{"env wins over the file: base_url", []string{"FLIGHT_POWER_CONFIG=" + deadFile, "FLIGHT_POWER_BASE_URL=" + s.url}, nil, 0, ""},
		{"env wins over the file: jwt_token", []string{"FLIGHT_POWER_CONFIG=" + goodFile, "FLIGHT_POWER_JWT_TOKEN=bogus"}, nil, 3, "(jwt_token from FLIGHT_POWER_JWT_TOKEN)"},
		{"flag wins over env", []string{"FLIGHT_POWER_CONFIG=" + goodFile, "FLIGHT_POWER_BASE_URL=" + dead}, []string{"--base_url", s.url}, 0, ""},
		{"flag wins over env: jwt_token", []string{"FLIGHT_POWER_CONFIG=" + goodFile, "FLIGHT_POWER_JWT_TOKEN=bogus"}, []string{"--jwt_token=" + good}, 0, ""},
		{"file value used when env and flag are silent", []string{"FLIGHT_POWER_CONFIG=" + deadFile}, nil, 3, "cannot reach the server at " + dead + ": connect: connection refused: check that flight-power-server runs there and that base_url (from " + deadFile + ") is right"},
		{"--config wins over FLIGHT_POWER_CONFIG", []string{"FLIGHT_POWER_CONFIG=" + deadFile}, []string{"--config", goodFile}, 0, ""},
		{"--config before the command", []string{"FLIGHT_POWER_CONFIG=" + deadFile}, []string{"--config", goodFile, "list"}, 0, ""},
		{"FLIGHT_POWER_CONFIG wins over ~/.config", []string{"HOME=" + home, "FLIGHT_POWER_CONFIG=" + deadFile}, nil, 3, "cannot reach"},
		{"env alone, no file", []string{"FLIGHT_POWER_BASE_URL=" + s.url, "FLIGHT_POWER_JWT_TOKEN=" + good}, nil, 0, ""},
		{"flags alone, no file", nil, []string{"--base_url=" + s.url, "--jwt_token", good}, 0, ""},
		{"timeout from env", []string{"FLIGHT_POWER_CONFIG=" + goodFile, "FLIGHT_POWER_TIMEOUT=0s"}, nil, 2, "timeout 0s (from FLIGHT_POWER_TIMEOUT) must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if len(args) == 0 || args[len(args)-1] != "list" {
				args = append([]string{"list"}, args...)
			}
			r := runClient(t, c.env, args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("got %s\nwant exit %d and stderr containing %q", r, c.code, c.stderr)
			}
			if c.code == 0 && !strings.Contains(r.stdout, "\nnode01     sim\n") {
				t.Errorf("list output lacks node01:\n%s", r.stdout)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, data)
		return p
	}
	noToken := write("no-token.yaml", "base_url: http://localhost:6302\njwt_token:\n")
	unknownKey := write("unknown.yaml", "base_url: http://localhost:6302\njwt_token: x\njwt-token: y\n")
	badURL := write("bad-url.yaml", "base_url: localhost:6302\njwt_token: x\n")
	nested := write("nested.yaml", "base_url:\n  host: x\n")
	badTimeout := write("bad-timeout.yaml", "base_url: http://localhost:6302\njwt_token: x\ntimeout: 300\n")
	cases := []struct {
		name   string
		env    []string
		args   []string
		stderr string
	}{
		{"no config anywhere", nil, nil,
			"flight-power: no config file (looked for --config, $FLIGHT_POWER_CONFIG, HOME/.config/flight-power/config.yaml and /opt/flight/opt/power-client/etc/config.yaml): write base_url and jwt_token to one, or set FLIGHT_POWER_BASE_URL and FLIGHT_POWER_JWT_TOKEN\n"},
		{"only base_url in env", []string{"FLIGHT_POWER_BASE_URL=http://localhost:6302"}, nil, "no config file (looked for"},
		{"--config names a missing file", nil, []string{"--config", dir + "/nope.yaml"},
			"flight-power: config file " + dir + "/nope.yaml (from --config) does not exist: write base_url and jwt_token to it, or point --config elsewhere\n"},
		{"FLIGHT_POWER_CONFIG names a missing file", []string{"FLIGHT_POWER_CONFIG=" + dir + "/nope.yaml"}, nil, "(from FLIGHT_POWER_CONFIG) does not exist"},
		{"empty jwt_token, as the original's reference file", []string{"FLIGHT_POWER_CONFIG=" + noToken}, nil,
			"flight-power: no jwt_token in " + noToken + ": add the token your administrator minted with flight-power-server token\n"},
		{"unknown key", []string{"FLIGHT_POWER_CONFIG=" + unknownKey}, nil, "config " + unknownKey + `: line 3: unknown key "jwt-token": the keys are base_url, jwt_token and timeout`},
		{"base_url without a scheme", []string{"FLIGHT_POWER_CONFIG=" + badURL}, nil, `base_url "localhost:6302" (from ` + badURL + ") is not a server address like http://localhost:6302"},
		{"nested value", []string{"FLIGHT_POWER_CONFIG=" + nested}, nil, "line 2: base_url must be a single value"},
		{"timeout without a unit", []string{"FLIGHT_POWER_CONFIG=" + badTimeout}, nil, `line 3: timeout: want a duration like 90s or 5m, got "300"`},
	}
	system := false
	if _, err := os.Stat(systemConfigPath); err == nil {
		system = true
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if system && strings.HasPrefix(c.name, "no config") || system && strings.HasPrefix(c.name, "only base_url") {
				t.Skipf("%s exists on this machine", systemConfigPath)
			}
			home := t.TempDir()
			r := runClient(t, append([]string{"HOME=" + home}, c.env...), append([]string{"status", "node01"}, c.args...)...)
			stderr := strings.ReplaceAll(r.stderr, home, "HOME")
			if r.code != 2 || !strings.Contains(stderr, c.stderr) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("got %s\nwant exit 2 and one line containing %q", r, c.stderr)
			}
		})
	}
}

// --timeout gives up on a slow server with exit 3; Ctrl-C ends the wait
// at once with one line and no stack trace.
func TestTimeoutAndInterrupt(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := startServer(t)
	env := []string{"FLIGHT_POWER_CONFIG=" + s.config(t, s.token("operator"))}

	start := time.Now()
	r := runClient(t, env, "status", "slow01", "--timeout", "500ms")
	if r.code != 3 || r.stderr != "flight-power: no answer from "+s.url+" within 500ms: commands may still be running there; check with flight-power status, or raise --timeout\n" {
		t.Errorf("timeout: got %s", r)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("timeout of 500ms took %v", d)
	}

	cmd := exec.Command(clientBin, "on", "slow01", "node01")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the power on request reaches the server", func() bool {
		return sqlOne(t, s.db, "SELECT count(*) FROM requests WHERE method='PATCH' AND state='running'") == "1"
	})
	start = time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("after Ctrl-C: got %v, want exit 130", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Ctrl-C took %v to end the client", d)
	}
	want := "flight-power: interrupted before the server answered: some nodes may still change state: check with flight-power status slow01 node01\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("after Ctrl-C: stdout %q stderr %q, want stderr %q", stdout.String(), stderr.String(), want)
	}
}

// The --json shapes are an interface for scripts: these are their fields.
func TestJSONOutput(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	env := []string{"FLIGHT_POWER_CONFIG=" + s.config(t, s.token("operator"))}

	before := runClient(t, env, "on", "--json", "node[01-02]", "ghost", "bad01")
	after := runClient(t, env, "on", "node[01-02]", "ghost", "bad01", "--json")
	for _, r := range []result{before, after} {
		if r.code != 1 || r.stderr != "" {
			t.Fatalf("on --json: got %s, want exit 1 and nothing on stderr", r)
		}
		var out struct {
			Action    string `json:"action"`
			RequestID string `json:"request_id"`
			OK        bool   `json:"ok"`
			Failed    string `json:"failed"`
			Nodes     []map[string]any
		}
		decodeStrict(t, r.stdout, &out)
		if out.Action != "on" || len(out.RequestID) != 26 || out.OK || out.Failed != "bad01,ghost" || len(out.Nodes) != 4 {
			t.Errorf("on --json: got %+v", out)
		}
		wantKeys := "duration_ms,error,exit_code,missing,node,ok,platform,result,state,timed_out"
		for _, n := range out.Nodes {
			if got := strings.Join(sortedKeys(n), ","); got != wantKeys {
				t.Errorf("node keys: got %s, want %s", got, wantKeys)
			}
		}
		checks := []struct {
			i    int
			want map[string]any
		}{
			{0, map[string]any{"node": "node01", "platform": "sim", "ok": true, "state": "ok", "result": "Starting", "missing": false, "exit_code": 0.0, "error": ""}},
			{2, map[string]any{"node": "ghost", "ok": false, "state": "missing", "result": "Failed to start", "missing": true, "exit_code": nil, "error": "node is not in the topology"}},
			{3, map[string]any{"node": "bad01", "platform": "broken", "ok": false, "state": "failed", "exit_code": 1.0, "error": "exit 1: BMC of bad01 is not answering"}},
		}
		for _, c := range checks {
			for k, v := range c.want {
				if got := out.Nodes[c.i][k]; got != v {
					t.Errorf("node %d %s: got %#v, want %#v", c.i, k, got, v)
				}
			}
		}
	}

	r := runClient(t, env, "status", "node01", "node03", "--json")
	var st actionOutput
	decodeStrict(t, r.stdout, &st)
	if r.code != 0 || !st.OK || st.Failed != "" || len(st.Nodes) != 2 || st.Nodes[0].State != "on" || st.Nodes[0].Result != "On" || st.Nodes[1].State != "off" {
		t.Errorf("status --json: got %s", r)
	}

	r = runClient(t, env, "list", "--json")
	var nodes struct{ Nodes []listedNode }
	decodeStrict(t, r.stdout, &nodes)
	if r.code != 0 || len(nodes.Nodes) != 15 || nodes.Nodes[0] != (listedNode{"bad01", "broken"}) {
		t.Errorf("list --json: got %s", r)
	}
	r = runClient(t, env, "--json", "list", "--groups")
	var groups struct{ Groups []listedGroup }
	decodeStrict(t, r.stdout, &groups)
	if r.code != 0 || len(groups.Groups) != 3 || groups.Groups[1].Name != "evens" || strings.Join(groups.Groups[1].Nodes, ",") != "node02,node04,node06" {
		t.Errorf("list --groups --json: got %s", r)
	}
	r = runClient(t, env, "version", "--json")
	var v struct{ Version string }
	decodeStrict(t, r.stdout, &v)
	if r.code != 0 || v.Version == "" {
		t.Errorf("version --json: got %s", r)
	}
}

func decodeStrict(tb testing.TB, s string, v any) {
	tb.Helper()
	dec := jsonDecoder(s)
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("decode %q: %v", s, err)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "flight-power dev\n", ""},
		{[]string{"help"}, 0, "usage: flight-power COMMAND", ""},
		{[]string{"--help"}, 0, "usage: flight-power COMMAND", ""},
		{[]string{"help", "restart"}, 0, "usage: flight-power restart TARGETS...", ""},
		{[]string{"status", "-h"}, 0, "usage: flight-power status TARGETS...", ""},
		{[]string{"list", "--help"}, 0, "usage: flight-power list", ""},
		{nil, 2, "", "flight-power: missing command: run flight-power help\n"},
		{[]string{"version", "extra"}, 2, "", `version takes no arguments, got ["extra"]`},
		{[]string{"help", "nosuch"}, 2, "", `no command "nosuch"`},
	}
	for _, c := range cases {
		r := runClient(t, nil, c.args...)
		if r.code != c.code || !strings.HasPrefix(r.stdout, c.stdout) || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("flight-power %q: got %s\nwant exit %d, stdout starting %q, stderr containing %q", c.args, r, c.code, c.stdout, c.stderr)
		}
	}
}

// The client must stay small and static: no SQLite in its dependencies.
func TestNoSQLiteInTheClient(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %q", deps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "modernc.org/sqlite") || strings.HasSuffix(d, "flight-power/store") || strings.HasSuffix(d, "flight-power/runner") {
			t.Errorf("the client depends on %s", d)
		}
	}
}

// The README's Slurm wrapper, run as written with one hostlist argument the
// way slurmctld runs ResumeProgram, exits 0 when every node powers on and
// non-zero when one fails.
func TestSlurmWrapperFromReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sh\n(#!/bin/sh\nexec /opt/flight/opt/power-client/bin/flight-power on \"\\$1\" (>>\\S+) 2>&1\n)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no two-line slurm-resume wrapper")
	}
	s := startServer(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "flight-power.log")
	script := strings.Replace(string(m[1]), "/opt/flight/opt/power-client/bin/flight-power", clientBin, 1)
	script = strings.Replace(script, string(m[2]), ">>"+log, 1)
	wrapper := filepath.Join(dir, "slurm-resume")
	writeFile(t, wrapper, script)
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "FLIGHT_POWER_CONFIG=" + s.config(t, s.token("operator"))}
	for _, c := range []struct {
		hostlist string
		code     int
	}{
		{"node[01-03,05]", 0},
		{"node[06-07],bad01", 1},
	} {
		cmd := exec.Command(wrapper, c.hostlist)
		cmd.Env = env
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code {
			b, _ := os.ReadFile(log)
			t.Errorf("slurm-resume %s: exit %d, want %d\n%s", c.hostlist, code, c.code, b)
		}
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "node05  Starting") || !strings.Contains(string(b), "3 nodes: 2 ok, 1 failed: bad01") {
		t.Errorf("wrapper log:\n%s", b)
	}
}
