package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// The emulator the cmd/lambda tests pin.
const (
	rieModule  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	rieVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// lambdaColdRuns is how many fresh emulators get a first invoke.
const lambdaColdRuns = 3

// benchLambda builds bootstrap as template.yaml deploys it (linux/arm64,
// stripped) and reports its size, then builds it for this machine and
// times the first invoke of GET /nodes under aws-lambda-rie, where INIT
// (start, topology, audit DB create and migrate) happens.
func benchLambda(ctx context.Context, s *suite) []row {
	const (
		sizeMetric = "Lambda bootstrap, stripped, linux/arm64"
		sizeTarget = "<= 10 MB"
		invMetric  = "Lambda first invoke (GET /nodes) under aws-lambda-rie, incl. INIT"
		invTarget  = "<= 150 ms"
	)
	src := filepath.Join(s.repo, "cmd", "lambda")
	if gos, _ := filepath.Glob(filepath.Join(src, "*.go")); len(gos) == 0 {
		return []row{naRow(sizeMetric, sizeTarget, "no cmd/lambda yet"), naRow(invMetric, invTarget, "no cmd/lambda yet")}
	}
	dir := filepath.Join(s.dir, "lambda")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return []row{errRow(sizeMetric, sizeTarget, err), errRow(invMetric, invTarget, err)}
	}
	var rows []row

	s.logf("building bootstrap for linux/arm64 and linux/%s", runtime.GOARCH)
	arm := filepath.Join(dir, "bootstrap-arm64")
	if err := buildBootstrap(ctx, s.repo, "arm64", arm); err != nil {
		rows = append(rows, errRow(sizeMetric, sizeTarget, err))
	} else if fi, err := os.Stat(arm); err != nil {
		rows = append(rows, errRow(sizeMetric, sizeTarget, err))
	} else {
		r := row{metric: sizeMetric, value: megabytes(fi.Size()), target: sizeTarget, verdict: verdict(fi.Size() <= 10e6)}
		rows = append(rows, r)
	}
	task := filepath.Join(dir, "task")
	boot := filepath.Join(task, "bootstrap")
	if err := os.MkdirAll(task, 0o755); err != nil {
		return append(rows, errRow(invMetric, invTarget, err))
	}
	if err := buildBootstrap(ctx, s.repo, runtime.GOARCH, boot); err != nil {
		return append(rows, errRow(invMetric, invTarget, err))
	}
	if fi, err := os.Stat(boot); err == nil && len(rows) > 0 && rows[0].verdict != verdictError {
		rows[0].notes = append(rows[0].notes, fmt.Sprintf("linux/%s build: %s; built by make bootstrap (the Makefile's LAMBDA_FLAGS, as sam build)", runtime.GOARCH, megabytes(fi.Size())))
	}
	demo, err := os.ReadFile(filepath.Join(s.repo, "cmd/local/etc/demo-topology.yaml"))
	if err == nil {
		err = os.WriteFile(filepath.Join(task, "topology.yaml"), demo, 0o644)
	}
	if err != nil {
		return append(rows, errRow(invMetric, invTarget, err))
	}
	rie, err := findRIE(ctx)
	if err != nil {
		return append(rows, naRow(invMetric, invTarget, err.Error()))
	}
	tok, err := token("viewer")
	if err != nil {
		return append(rows, errRow(invMetric, invTarget, err))
	}
	event := listNodesEvent(tok)

	var cold, warm []time.Duration
	for i := range lambdaColdRuns {
		s.logf("cold invoke %d/%d", i+1, lambdaColdRuns)
		c, w, err := coldInvoke(ctx, rie, task, filepath.Join(dir, fmt.Sprintf("audit-%d", i), "audit.db"), event)
		if err != nil {
			return append(rows, errRow(invMetric, invTarget, err))
		}
		cold, warm = append(cold, c), append(warm, w)
	}
	m := median(cold)
	return append(rows, row{
		metric: invMetric, value: millis(m), target: invTarget, verdict: verdict(m <= 150*time.Millisecond),
		notes: []string{fmt.Sprintf("median of %d fresh emulators, each with a new audit DB under /tmp: %s; the second (warm) invoke: %s; from POST to answer, emulator already listening",
			lambdaColdRuns, millisList(cold), millisList(warm))},
	})
}

// buildBootstrap builds cmd/lambda for linux/arch with `make bootstrap`,
// the flags sam build uses.
func buildBootstrap(ctx context.Context, repo, arch, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "make", "-s", "bootstrap", "BOOTSTRAP="+abs, "LAMBDA_ARCH="+arch)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build bootstrap for %s: %w: %s", arch, err, oneLine(string(out)))
	}
	return nil
}

// findRIE finds aws-lambda-rie on PATH or in GOBIN, installing the pinned
// version into GOBIN when it is in neither.
func findRIE(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\n")
	gobin := strings.TrimSpace(f[0])
	if gobin == "" && len(f) > 1 {
		gobin = filepath.Join(strings.Split(strings.TrimSpace(f[1]), string(os.PathListSeparator))[0], "bin")
	}
	bin := filepath.Join(gobin, "aws-lambda-rie")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	install := exec.CommandContext(ctx, "go", "install", rieModule+"/cmd/aws-lambda-rie@"+rieVersion)
	install.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOOS=", "GOARCH=")
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("aws-lambda-rie not installed and go install failed: %s", oneLine(string(out)))
	}
	return bin, nil
}

// listNodesEvent is an API Gateway HTTP API (payload 2.0) GET /nodes.
func listNodesEvent(tok string) []byte {
	now := time.Now()
	e := map[string]any{
		"version":        "2.0",
		"routeKey":       "$default",
		"rawPath":        "/nodes",
		"rawQueryString": "",
		"headers":        map[string]string{"authorization": "Bearer " + tok, "user-agent": "flight-power-bench"},
		"requestContext": map[string]any{
			"http":      map[string]string{"method": "GET", "path": "/nodes", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "flight-power-bench"},
			"requestId": "bench",
			"routeKey":  "$default",
			"stage":     "$default",
			"timeEpoch": now.UnixMilli(),
		},
		"isBase64Encoded": false,
	}
	b, _ := json.Marshal(e)
	return b
}

// coldInvoke starts a fresh emulator with bootstrap in task and times its
// first invoke (cold: the emulator starts bootstrap on it) and a second.
func coldInvoke(ctx context.Context, rie, task, auditDB string, event []byte) (cold, warm time.Duration, err error) {
	apiPort, err := freeTCPPort()
	if err != nil {
		return 0, 0, err
	}
	runtimePort, err := freeTCPPort()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", runtimePort),
		"./bootstrap")
	cmd.Dir = task
	cmd.Env = append(os.Environ(),
		"FLIGHT_POWER_JWT_SHARED_SECRET="+benchSecret,
		"FLIGHT_POWER_TOPOLOGY_CONFIG="+filepath.Join(task, "topology.yaml"),
		"FLIGHT_POWER_AUDIT_DB="+auditDB,
		"FLIGHT_POWER_SCRIPTS_DIR="+task,
	)
	log := &tail{}
	cmd.Stdout, cmd.Stderr = lineWriter{log}, lineWriter{log}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start aws-lambda-rie: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("aws-lambda-rie did not listen on %s: %s", addr, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	invoke := func() (time.Duration, error) {
		t0 := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		if err != nil {
			return 0, err
		}
		var out struct {
			StatusCode   int    `json:"statusCode"`
			ErrorMessage string `json:"errorMessage"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("invoke answered %s: %s (log: %s)", resp.Status, oneLine(string(body)), log.String())
		}
		return took, nil
	}
	if cold, err = invoke(); err != nil {
		return 0, 0, err
	}
	if warm, err = invoke(); err != nil {
		return 0, 0, err
	}
	return cold, warm, nil
}

func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lineWriter feeds a tail line by line.
type lineWriter struct{ t *tail }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.add(l)
	}
	return len(p), nil
}
