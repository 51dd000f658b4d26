package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// These tests build bootstrap as Lambda runs it (GOOS=linux, CGO_ENABLED=0,
// -tags lambda.norpc) and drive it through the AWS Lambda Runtime Interface
// Emulator with raw event fixtures, then read the audit log it wrote with
// the sqlite3 shell.

// The emulator, pinned. It is installed into GOBIN (or GOPATH/bin) when
// that version is not there yet; a test that cannot get it fails.
const (
	rieModule  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	rieVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// artefacts are built once for every test of the package.
var artefacts struct {
	mu        sync.Mutex
	dir       string // removed by TestMain
	bootstrap string
	rie       string
	err       error
	built     bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if artefacts.dir != "" {
		os.RemoveAll(artefacts.dir)
	}
	os.Exit(code)
}

// buildArtefacts returns the bootstrap binary and the emulator, building
// and installing them on first use.
func buildArtefacts(t *testing.T) (bootstrap, rie string) {
	t.Helper()
	artefacts.mu.Lock()
	defer artefacts.mu.Unlock()
	if !artefacts.built {
		artefacts.built = true
		artefacts.err = func() error {
			dir, err := os.MkdirTemp("", "flight-power-lambda")
			if err != nil {
				return err
			}
			artefacts.dir = dir
			artefacts.bootstrap = filepath.Join(dir, "bootstrap")
			// The Makefile owns the build flags: build as sam build does.
			build := exec.Command("make", "-s", "-C", "../..", "bootstrap", "BOOTSTRAP="+artefacts.bootstrap, "LAMBDA_ARCH="+runtime.GOARCH)
			if out, err := build.CombinedOutput(); err != nil {
				return fmt.Errorf("build bootstrap: %v\n%s", err, out)
			}
			artefacts.rie, err = installRIE()
			return err
		}()
	}
	if artefacts.err != nil {
		t.Fatal(artefacts.err)
	}
	return artefacts.bootstrap, artefacts.rie
}

// installRIE returns the pinned emulator from GOBIN, installing it there
// first when it is absent or another version.
func installRIE() (string, error) {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	lines := strings.Split(string(out), "\n")
	gobin := strings.TrimSpace(lines[0])
	if gobin == "" && len(lines) > 1 {
		gobin = filepath.Join(filepath.SplitList(strings.TrimSpace(lines[1]))[0], "bin")
	}
	bin := filepath.Join(gobin, "aws-lambda-rie")
	pinned := func() bool {
		info, err := exec.Command("go", "version", "-m", bin).Output()
		return err == nil && bytes.Contains(info, []byte(rieModule+"\t"+rieVersion))
	}
	if pinned() {
		return bin, nil
	}
	install := exec.Command("go", "install", rieModule+"/cmd/aws-lambda-rie@"+rieVersion)
	install.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOOS=", "GOARCH=")
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("install the Lambda Runtime Interface Emulator (%s@%s) into %s: %v\n%s", rieModule, rieVersion, gobin, err, out)
	}
	if !pinned() {
		return "", fmt.Errorf("%s is not %s@%s after go install", bin, rieModule, rieVersion)
	}
	return bin, nil
}

// emulator is one aws-lambda-rie running bootstrap from its task root.
type emulator struct {
	root   string
	url    string
	cmd    *exec.Cmd
	output *syncBuffer // the emulator's stdout: the function's stdout and stderr, with START/END/REPORT lines
	logs   *syncBuffer // the emulator's own log
	exited chan struct{}
}

// freeAddr is a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startEmulator lays out a task root (bootstrap, and topology.yaml when
// topology is not empty) and runs the emulator on it with env added to a
// clean environment.
func startEmulator(t *testing.T, topology string, env ...string) *emulator {
	t.Helper()
	bootstrap, rie := buildArtefacts(t)
	root := t.TempDir()
	if err := os.Link(bootstrap, filepath.Join(root, "bootstrap")); err != nil {
		data, rerr := os.ReadFile(bootstrap)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(filepath.Join(root, "bootstrap"), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if topology != "" {
		if err := os.WriteFile(filepath.Join(root, "topology.yaml"), []byte(topology), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	apiAddr, runtimeAddr := freeAddr(t), freeAddr(t)
	e := &emulator{root: root, url: "http://" + apiAddr + "/2015-03-31/functions/function/invocations",
		output: &syncBuffer{}, logs: &syncBuffer{}, exited: make(chan struct{})}
	e.cmd = exec.Command(rie, "--runtime-interface-emulator-address", apiAddr, "--runtime-api-address", runtimeAddr, "./bootstrap")
	e.cmd.Dir = root
	e.cmd.Env = append(cleanEnv(), env...)
	e.cmd.Stdout, e.cmd.Stderr = e.output, e.logs
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so the runtime goes with it
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-e.exited
		}
		if t.Failed() {
			t.Logf("emulator output:\n%s\nemulator log:\n%s", e.output.Bytes(), e.logs.Bytes())
		}
	})

	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", apiAddr, time.Second); err == nil {
			c.Close()
			return e
		}
		select {
		case <-e.exited:
			t.Fatalf("the emulator exited before listening:\n%s", e.logs.Bytes())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator is not listening on %s after 15s:\n%s", apiAddr, e.logs.Bytes())
		}
	}
}

// cleanEnv is this process's environment without anything the function or
// its commands read, so the host's settings and credentials stay out.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FLIGHT_POWER_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "_LAMBDA") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// invoke posts one event and returns the emulator's HTTP status and body.
func (e *emulator) invoke(t *testing.T, payload []byte) (int, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Post(e.url, "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body, time.Since(start)
}

// apiAnswer is an HTTP event answer of either shape.
type apiAnswer struct {
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// header reads a header from either shape.
func (a *apiAnswer) header(k string) string {
	if v, ok := a.Headers[k]; ok {
		return v
	}
	if vs := a.MultiValueHeaders[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// call invokes an HTTP event and decodes the answer, which must come back
// as a function result (emulator status 200, no errorMessage).
func (e *emulator) call(t *testing.T, payload []byte) (*apiAnswer, time.Duration) {
	t.Helper()
	status, body, took := e.invoke(t, payload)
	if status != http.StatusOK {
		t.Fatalf("emulator answered %d: %s", status, body)
	}
	var a apiAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.StatusCode == 0 {
		t.Fatalf("not an HTTP event answer (%v): %s", err, body)
	}
	if a.IsBase64Encoded {
		t.Fatalf("answer is base64; the API answers JSON text: %s", body)
	}
	return &a, took
}

// commands decodes an action's body into node -> attributes, keeping order.
func commands(t *testing.T, a *apiAnswer) ([]string, map[string]handler.CommandAttributes) {
	t.Helper()
	var doc handler.Document[handler.CommandAttributes]
	if err := json.Unmarshal([]byte(a.Body), &doc); err != nil {
		t.Fatalf("body: %v: %s", err, a.Body)
	}
	var order []string
	byNode := make(map[string]handler.CommandAttributes)
	for _, r := range doc.Data {
		order = append(order, r.ID)
		byNode[r.ID] = r.Attributes
	}
	return order, byNode
}

// functionTimeout is the emulator's function timeout in the main test: the
// slow node is cut at functionTimeout - finish margin (the margin capped at
// half of it), well before API Gateway's 29 s cap would apply.
const functionTimeout = 4 * time.Second

func TestLambdaEmulator(t *testing.T) {
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("sqlite3 shell not found: run make deps (apt-get install sqlite3)")
	}
	viewer, operator := mint(t, "viewer"), mint(t, "operator")
	tokens := map[string]string{"VIEWER_TOKEN": viewer, "OPERATOR_TOKEN": operator}
	const (
		accessKey    = "AKIAFLIGHTPOWERTEST1"
		secretKey    = "aws-secret-key-for-the-emulator-test"
		sessionToken = "IQoJb3JpZ2luX2VjEMUL4T0R"
	)
	e := startEmulator(t, lambdaTopology(t),
		envSecret+"="+testSecret,
		envAuditDB+"=audit/audit.db", // relative to the task root, where the emulator starts bootstrap
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_SESSION_TOKEN="+sessionToken,
		"AWS_REGION=eu-west-1",
		fmt.Sprintf("AWS_LAMBDA_FUNCTION_TIMEOUT=%d", int(functionTimeout.Seconds())),
	)
	db := filepath.Join(e.root, "audit", "audit.db")

	t.Run("http api v2: list nodes (cold start)", func(t *testing.T) {
		a, took := e.call(t, fixture(t, "http-api-v2-list-nodes.json", tokens))
		t.Logf("first invoke (INIT + request): %s", took.Round(time.Millisecond))
		if a.StatusCode != 200 || a.header("Content-Type") != "application/json" || len(a.header("X-Request-Id")) != 26 {
			t.Fatalf("got %d %v %s, want 200, JSON and a request id", a.StatusCode, a.Headers, a.Body)
		}
		var doc handler.Document[map[string]any]
		if err := json.Unmarshal([]byte(a.Body), &doc); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range doc.Data {
			ids = append(ids, r.ID)
		}
		if want := []string{"demo01", "demo02", "demo03", "demo04", "probe01", "slow01"}; !slices.Equal(ids, want) {
			t.Errorf("nodes: got %v, want %v", ids, want)
		}
	})

	t.Run("http api v2: status with repeated nodes=", func(t *testing.T) {
		a, _ := e.call(t, fixture(t, "http-api-v2-status.json", tokens))
		order, got := commands(t, a)
		if a.StatusCode != 200 || !slices.Equal(order, []string{"demo01", "demo02", "probe01"}) {
			t.Fatalf("got %d %v, want 200 for demo01, demo02, probe01: %s", a.StatusCode, order, a.Body)
		}
		if got["demo01"].State != "off" || got["demo02"].State != "off" || got["probe01"].State != "on" {
			t.Errorf("got %+v, want demo01 and demo02 off, probe01 on", got)
		}
	})

	t.Run("rest v1: power on", func(t *testing.T) {
		a, _ := e.call(t, fixture(t, "rest-v1-power-on.json", tokens))
		if a.MultiValueHeaders == nil || a.Headers != nil {
			t.Errorf("got headers %v and multiValueHeaders %v, want the v1 shape (multiValueHeaders only)", a.Headers, a.MultiValueHeaders)
		}
		order, got := commands(t, a)
		if a.StatusCode != 200 || !slices.Equal(order, []string{"demo01", "demo02"}) {
			t.Fatalf("got %d %v, want 200 for demo01, demo02: %s", a.StatusCode, order, a.Body)
		}
		for _, n := range order {
			if !got[n].Success || got[n].State != "ok" || got[n].Action != "power_on" {
				t.Errorf("%s: got %+v, want power_on ok", n, got[n])
			}
		}
	})

	t.Run("function url: status by node and group sees the power on", func(t *testing.T) {
		a, _ := e.call(t, fixture(t, "function-url-status.json", tokens))
		order, got := commands(t, a)
		if a.StatusCode != 200 || !slices.Equal(order, []string{"demo01", "probe01"}) {
			t.Fatalf("got %d %v, want 200 for demo01, probe01: %s", a.StatusCode, order, a.Body)
		}
		if got["demo01"].State != "on" || got["demo01"].Running.Value == nil || !*got["demo01"].Running.Value {
			t.Errorf("demo01: got %+v, want on and running", got["demo01"])
		}
	})

	t.Run("unauthenticated", func(t *testing.T) {
		a, _ := e.call(t, fixture(t, "http-api-v2-no-token.json", nil))
		var body struct {
			Errors []struct{ Status, Title, Detail string } `json:"errors"`
		}
		if err := json.Unmarshal([]byte(a.Body), &body); err != nil {
			t.Fatal(err)
		}
		if a.StatusCode != 401 || len(body.Errors) != 1 || body.Errors[0].Status != "401" || !strings.Contains(body.Errors[0].Detail, "Authorization") {
			t.Errorf("got %d %s, want 401 saying the Authorization header is missing", a.StatusCode, a.Body)
		}
	})

	t.Run("malformed event", func(t *testing.T) {
		for _, payload := range [][]byte{fixture(t, "s3-put.json", nil), []byte(`"just a string"`)} {
			status, body, _ := e.invoke(t, payload)
			var fail struct{ ErrorMessage, ErrorType string }
			if err := json.Unmarshal(body, &fail); err != nil {
				t.Fatalf("%d %s: %v", status, body, err)
			}
			if fail.ErrorType != "UnsupportedEvent" || !strings.Contains(fail.ErrorMessage, "want an API Gateway HTTP API") {
				t.Errorf("got %d %s, want an UnsupportedEvent function error", status, body)
			}
		}
	})

	t.Run("deadline: a slow node is cut, reported and recorded in time", func(t *testing.T) {
		a, took := e.call(t, fixture(t, "http-api-v2-status-slow.json", tokens))
		if took >= functionTimeout {
			t.Errorf("answered after %s, want before the %s function timeout", took, functionTimeout)
		}
		_, got := commands(t, a)
		slow := got["slow01"]
		if a.StatusCode != 200 || !slow.TimedOut || slow.Success || slow.State != "unknown" || !strings.Contains(slow.Error, "deadline") {
			t.Errorf("slow01: got %d %+v, want 200, timed out, unknown, a deadline error", a.StatusCode, slow)
		}
		if got["demo03"].State != "off" {
			t.Errorf("demo03: got %+v, want off", got["demo03"])
		}
	})

	t.Run("commands get the AWS credentials, never the secret or the function's config", func(t *testing.T) {
		env, err := os.ReadFile(filepath.Join(e.root, "env-probe01.txt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"AWS_ACCESS_KEY_ID=" + accessKey, "AWS_SECRET_ACCESS_KEY=" + secretKey, "AWS_SESSION_TOKEN=" + sessionToken, "AWS_REGION=eu-west-1", "name=probe01"} {
			if !slices.Contains(strings.Split(string(env), "\n"), want) {
				t.Errorf("command environment lacks %s", want)
			}
		}
		for _, bad := range []string{testSecret, "FLIGHT_POWER_", "AWS_LAMBDA_RUNTIME_API"} {
			if bytes.Contains(env, []byte(bad)) {
				t.Errorf("command environment holds %q", bad)
			}
		}
	})

	// The audit log, read with the sqlite3 shell.
	sql := func(q string) [][]string {
		t.Helper()
		out, err := exec.Command(sqlite3, "-cmd", ".timeout 5000", "-separator", "|", db, q).CombinedOutput()
		if err != nil {
			t.Fatalf("sqlite3 %s: %v\n%s", q, err, out)
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				rows = append(rows, strings.Split(l, "|"))
			}
		}
		return rows
	}
	requests := sql(`SELECT id, transport, transport_id, remote_addr, method, path, coalesce(action, '-'), coalesce(caller, '-'), status, state FROM requests ORDER BY id`)
	want := [][]string{
		{"lambda", "198.51.100.7", "GET", "/nodes", "list_nodes", "tester-viewer", "200", "done"},
		{"lambda", "198.51.100.8", "GET", "/", "status", "tester-viewer", "200", "done"},
		{"lambda", "203.0.113.9", "PATCH", "/", "power_on", "tester-operator", "200", "done"},
		{"lambda", "192.0.2.44", "GET", "/", "status", "tester-operator", "200", "done"},
		{"lambda", "198.51.100.66", "PATCH", "/", "-", "-", "401", "done"},
		{"lambda", "198.51.100.9", "GET", "/", "status", "tester-viewer", "200", "done"},
	}
	if len(requests) != len(want) {
		t.Fatalf("audit db has %d requests, want %d (the malformed events are not requests): %v", len(requests), len(want), requests)
	}
	output := e.output.Bytes()
	seenLambdaIDs := map[string]bool{}
	for i, r := range requests {
		got := append([]string{r[1]}, r[3:]...)
		if !slices.Equal(got, want[i]) {
			t.Errorf("request %d: got %v, want %v", i, got, want[i])
		}
		lambdaID := r[2]
		if lambdaID == "" || seenLambdaIDs[lambdaID] || !bytes.Contains(output, []byte("START RequestId: "+lambdaID)) {
			t.Errorf("request %d: transport_id %q is not the distinct Lambda request id of its invocation", i, lambdaID)
		}
		seenLambdaIDs[lambdaID] = true
	}
	results := sql(`SELECT request_id, node, action, state, timed_out FROM results ORDER BY id`)
	if len(results) != 9 {
		t.Errorf("audit db has %d results, want 9: %v", len(results), results)
	}

	// The same records as JSON lines in the function's output.
	lineOf := map[string]map[string]any{} // "request/ID/event" or "result/ID/node"
	sc := bufio.NewScanner(bytes.NewReader(output))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(`{"audit":`)) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("audit line is not JSON: %v: %s", err, line)
			continue
		}
		if m["stored"] != true {
			t.Errorf("audit line says the database write failed: %s", line)
		}
		switch m["audit"] {
		case "request":
			lineOf[fmt.Sprintf("request/%s/%s", m["id"], m["event"])] = m
		case "result":
			lineOf[fmt.Sprintf("result/%s/%s", m["request_id"], m["node"])] = m
		}
	}
	for _, r := range requests {
		events := []string{"begin", "finish"}
		if r[6] == "list_nodes" || r[6] == "-" {
			events = []string{"record"}
		}
		for _, ev := range events {
			m := lineOf["request/"+r[0]+"/"+ev]
			if m == nil || m["transport"] != "lambda" || m["transport_id"] != r[2] {
				t.Errorf("no %s line for request %s (%s %s) with transport lambda and id %s: %v", ev, r[0], r[4], r[5], r[2], m)
			}
		}
	}
	for _, r := range results {
		m := lineOf["result/"+r[0]+"/"+r[1]]
		if m == nil || m["state"] != r[3] || (m["timed_out"] == true) != (r[4] == "1") {
			t.Errorf("no matching result line for %v: %v", r, m)
		}
	}
	if n := len(lineOf); n != 10+9 {
		t.Errorf("got %d distinct audit lines, want 19 (10 request lines, 9 result lines)", n)
	}
	for _, secret := range []string{testSecret, viewer, operator} {
		if bytes.Contains(output, []byte(secret)) {
			t.Errorf("the function's output holds a secret or token (%.12s...)", secret)
		}
	}
}

// TestLambdaEmulatorInitFailure: a function that cannot be built fails INIT
// (the emulator answers 502, no request runs) with one line saying why.
func TestLambdaEmulatorInitFailure(t *testing.T) {
	tests := []struct {
		name     string
		topology string
		env      []string
		want     string
	}{
		{"no secret", "static_nodes: {}\n", nil, "flight-power init failed: " + envSecret + " is not set"},
		{"bad topology", "static_nodes:\n  n1: {platform: sim}\nplatfroms: {}\n", []string{envSecret + "=" + testSecret}, `topology.yaml:3: unknown key \"platfroms\"`},
		{"no topology packaged", "", []string{envSecret + "=" + testSecret}, "load topology (" + envTopology + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startEmulator(t, tt.topology, append(tt.env, envAuditDB+"=audit.db")...)
			status, body, _ := e.invoke(t, fixture(t, "http-api-v2-no-token.json", nil))
			if status != http.StatusBadGateway {
				t.Errorf("got %d %s, want 502 (INIT failed)", status, body)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !bytes.Contains(e.output.Bytes(), []byte(tt.want)) {
				if time.Now().After(deadline) {
					t.Fatalf("no log line saying %q", tt.want)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if bytes.Contains(e.output.Bytes(), []byte(`{"audit":`)) {
				t.Error("an audit line was written though INIT failed")
			}
		})
	}
}
