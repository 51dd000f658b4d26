package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrk's defaults: two threads, ten connections.
const (
	wrkThreads = 2
	wrkConns   = 10
)

// benchNodes loads GET /nodes (token check, JSON, one audit row per
// request) with wrk on loopback, then loads a bare net/http server that
// answers the same bytes, as the same-run ceiling of this machine.
func benchNodes(ctx context.Context, s *suite) []row {
	load := fmt.Sprintf("wrk -t%d -c%d", wrkThreads, wrkConns)
	rpsMetric := "GET /nodes (16 nodes) with token check and audit row, " + load
	p99Metric := "  p99 latency of the same run"
	const (
		rpsTarget = ">= 5,000 req/s"
		p99Target = "<= 20 ms"
	)
	fail := func(err error) []row {
		return []row{errRow(rpsMetric, rpsTarget, err), errRow(p99Metric, p99Target, err)}
	}
	wrkBin, err := exec.LookPath("wrk")
	if err != nil {
		return []row{naRow(rpsMetric, rpsTarget, "wrk not installed: apt-get install wrk"), naRow(p99Metric, p99Target, "wrk not installed")}
	}
	dir := filepath.Join(s.dir, "nodes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	demo, err := os.ReadFile(filepath.Join(s.repo, "cmd/local/etc/demo-topology.yaml"))
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "topology.yaml"), demo, 0o644); err != nil {
		return fail(err)
	}
	srv, err := s.startServer(ctx, dir)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	tok, err := token("viewer")
	if err != nil {
		return fail(err)
	}
	body, err := get(ctx, srv.url, "/nodes", tok)
	if err != nil {
		return fail(err)
	}

	s.logf("wrk against flight-power-server for %s", s.wrkFor)
	cpu0, _, err := srv.cpu()
	if err != nil {
		return fail(err)
	}
	ours, err := runWrk(ctx, wrkBin, srv.url+"/nodes", tok, s.wrkFor)
	if err != nil {
		return fail(err)
	}
	cpu1, _, err := srv.cpu()
	if err != nil {
		return fail(err)
	}
	audited, auditErr := countAudited(ctx, filepath.Join(dir, "audit.db"))
	srv.stop()

	s.logf("wrk against a bare net/http server for %s", s.wrkFor)
	bare, err := wrkBare(ctx, wrkBin, body, s.wrkFor)
	if err != nil {
		return fail(err)
	}

	auditNote := fmt.Sprintf("%d list_nodes rows in the audit log for %d requests wrk completed", audited, ours.requests)
	switch {
	case auditErr != nil:
		auditNote = "audit rows not counted: " + auditErr.Error()
	case audited < ours.requests:
		return fail(fmt.Errorf("only %d audit rows for %d requests", audited, ours.requests))
	}
	return []row{
		{
			metric: rpsMetric, value: fmt.Sprintf("%.0f req/s", ours.rps), target: rpsTarget,
			baseline: fmt.Sprintf("bare net/http %.0f req/s", bare.rps), ratio: ratio(ours.rps, bare.rps),
			verdict: verdict(ours.rps >= 5000),
			notes: []string{
				fmt.Sprintf("%s for %s on loopback, sharing the machine's CPUs with the server; demo topology; log_level info to a pipe; %s", load, s.wrkFor, auditNote),
				"baseline: a net/http server in the bench process answering the same bytes, no token, no audit, loaded the same way right after",
				fmt.Sprintf("server CPU per request: %s (of 2 CPUs shared with wrk)", micros((cpu1-cpu0)/time.Duration(max(1, ours.requests)))),
			},
		},
		{
			metric: p99Metric, value: millis(ours.p99), target: p99Target,
			baseline: "bare net/http " + millis(bare.p99), ratio: ratio(ours.p99.Seconds(), bare.p99.Seconds()),
			verdict: verdict(ours.p99 <= 20*time.Millisecond),
			notes:   []string{fmt.Sprintf("p50 %s, p90 %s, max %s (bare: p50 %s, max %s)", millis(ours.p50), millis(ours.p90), millis(ours.max), millis(bare.p50), millis(bare.max))},
		},
	}
}

// wrkResult is what the bench reads from wrk's report.
type wrkResult struct {
	rps                float64
	requests           int64
	p50, p90, p99, max time.Duration
}

var (
	rpsRE      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	totalRE    = regexp.MustCompile(`(\d+) requests in`)
	pctRE      = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	maxRE      = regexp.MustCompile(`(?m)^\s+Latency\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	sockErrsRE = regexp.MustCompile(`Socket errors: .*`)
)

func runWrk(ctx context.Context, bin, url, tok string, d time.Duration) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(wrkConns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency"}
	if tok != "" {
		args = append(args, "-H", "Authorization: Bearer "+tok)
	}
	out, err := exec.CommandContext(ctx, bin, append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, oneLine(string(out)))
	}
	text := string(out)
	if m := non2xxRE.FindStringSubmatch(text); m != nil {
		return wrkResult{}, fmt.Errorf("wrk saw %s answers that were not 2xx", m[1])
	}
	if m := sockErrsRE.FindString(text); m != "" {
		return wrkResult{}, fmt.Errorf("wrk: %s", m)
	}
	var r wrkResult
	m := rpsRE.FindStringSubmatch(text)
	t := totalRE.FindStringSubmatch(text)
	x := maxRE.FindStringSubmatch(text)
	if m == nil || t == nil || x == nil {
		return r, fmt.Errorf("cannot read wrk's report: %s", oneLine(text))
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.requests, _ = strconv.ParseInt(t[1], 10, 64)
	r.max = wrkDuration(x[1], x[2])
	for _, p := range pctRE.FindAllStringSubmatch(text, -1) {
		v := wrkDuration(p[2], p[3])
		switch p[1] {
		case "50":
			r.p50 = v
		case "90":
			r.p90 = v
		case "99":
			r.p99 = v
		}
	}
	if r.p99 == 0 {
		return r, errors.New("wrk printed no 99th percentile")
	}
	return r, nil
}

func wrkDuration(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	}
	return time.Duration(f * float64(time.Second))
}

// wrkBare loads an in-process net/http server that answers body.
func wrkBare(ctx context.Context, bin string, body []byte, d time.Duration) (wrkResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return wrkResult{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	return runWrk(ctx, bin, "http://"+ln.Addr().String()+"/nodes", "", d)
}

// countAudited counts the list_nodes requests in the audit log with the
// sqlite3 shell.
func countAudited(ctx context.Context, db string) (int64, error) {
	out, err := exec.CommandContext(ctx, "sqlite3", "-cmd", ".timeout 5000", db,
		"SELECT count(*) FROM requests WHERE action = 'list_nodes' AND status = 200").Output()
	if err != nil {
		return 0, fmt.Errorf("sqlite3: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

func millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
