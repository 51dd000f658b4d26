//go:build soak

package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The soak test (make soak; not part of make test) drives the real server
// with a steady mix of requests for SOAK_DURATION (default 10m) at
// SOAK_RATE requests a second (default 50), samples the server's RSS, open
// file descriptors and goroutines every 5 s, and checks that they stay
// flat and that every request sent is in the audit log.
//
// Open fds and goroutines follow the requests in flight (each running
// command holds pipes and goroutines), which follow how busy the machine
// is. So "flat" is judged on each minute's floor (its smallest sample, the
// quietest moment) and, most strictly, on the idle server before and after
// the load, with the client's connections closed: a leak raises both,
// a busy machine neither. Threads are shown, not judged: Go keeps the
// threads its busiest moment needed.

// startLoggingTo is s.start with the server's log going to a file, since a
// long run at log_level=debug writes more than a test should hold.
func (s *server) startLoggingTo(path string) {
	s.tb.Helper()
	logf, err := os.Create(path)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.tb.Cleanup(func() { logf.Close() })
	s.stderr = &syncBuffer{}
	s.cmd = exec.Command(serverBin, "serve", "--config", s.conf)
	s.cmd.Stderr = logf
	s.cmd.Env = append(os.Environ(), s.env...)
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
		b, _ := os.ReadFile(path)
		if m := listenRE.FindSubmatch(b); m != nil && strings.Contains(string(b), "listening") {
			s.url = "http://" + string(m[1])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.tb.Fatalf("server did not start listening")
}

// sampleEvery is how often the soak samples the server.
const sampleEvery = 5 * time.Second

// soakSample is the server's footprint at one moment.
type soakSample struct {
	at         time.Duration
	rssKB      int
	fds        int
	goroutines int
	threads    int
	inFlight   int
}

var goroutinesRE = regexp.MustCompile(`msg=runtime goroutines=(\d+)`)

// lastGoroutines is the goroutine count of the last runtime line in the log.
func lastGoroutines(tb testing.TB, f *os.File, last *int) int {
	sc := bufio.NewScanner(f) // continues where the previous call stopped
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := goroutinesRE.FindStringSubmatch(sc.Text()); m != nil {
			*last = atoi(tb, m[1])
		}
	}
	return *last
}

func TestSoak(t *testing.T) {
	requireSqlite3(t)
	duration := 10 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	rate := 50
	if v := os.Getenv("SOAK_RATE"); v != "" {
		rate = atoi(t, v)
	}
	const nodes = 50
	s := newServerFiles(t, simTopology(t, nodes, ""), "log_level=debug\n")
	logPath := filepath.Join(s.dir, "server.log")
	s.startLoggingTo(logPath)
	pid := s.cmd.Process.Pid
	logf, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	op, viewer := s.token("operator"), s.token("viewer")

	type shot struct {
		method, path, token string
		wantStatus          int
	}
	nodesQuery := func(r *rand.Rand) string {
		a := 1 + r.IntN(nodes)
		b := min(nodes, a+r.IntN(10))
		return fmt.Sprintf("?nodes=node%%5B%02d-%02d%%5D", a, b)
	}
	pick := func(r *rand.Rand) shot {
		switch p := r.IntN(100); {
		case p < 40:
			return shot{"GET", "/" + nodesQuery(r), viewer, 200}
		case p < 50:
			return shot{"PATCH", "/" + nodesQuery(r), op, 200}
		case p < 60:
			return shot{"DELETE", "/" + nodesQuery(r), op, 200}
		case p < 65:
			return shot{"PUT", "/" + nodesQuery(r), op, 200}
		case p < 75:
			return shot{"GET", "/nodes", viewer, 200}
		case p < 80:
			return shot{"GET", "/groups", viewer, 200}
		case p < 88:
			return shot{"GET", "/" + nodesQuery(r), "", 401}
		case p < 93:
			return shot{"PATCH", "/" + nodesQuery(r), viewer, 403}
		default:
			return shot{"GET", "/" + nodesQuery(r), "not-a-token", 401}
		}
	}

	// One connection per request, as the CLI makes: idle keep-alive
	// connections would hold server fds and goroutines for 90 s after a
	// burst and blur the floors.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var (
		mu        sync.Mutex
		ids       = map[string]int{} // X-Request-Id -> status
		latencies []time.Duration
		wrong     []string
		sent      atomic.Int64
		failed    atomic.Int64
		behind    atomic.Int64
		inFlight  atomic.Int64
	)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	fire := func(sh shot) {
		defer wg.Done()
		defer func() { <-sem }()
		inFlight.Add(1)
		defer inFlight.Add(-1)
		req, _ := http.NewRequest(sh.method, s.url+sh.path, nil)
		if sh.token != "" {
			req.Header.Set("Authorization", "Bearer "+sh.token)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			failed.Add(1)
			mu.Lock()
			wrong = append(wrong, fmt.Sprintf("%s %s: %v", sh.method, sh.path, err))
			mu.Unlock()
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		latencies = append(latencies, took)
		ids[resp.Header.Get("X-Request-Id")] = resp.StatusCode
		if resp.StatusCode != sh.wantStatus {
			wrong = append(wrong, fmt.Sprintf("%s %s: got %d, want %d", sh.method, sh.path, resp.StatusCode, sh.wantStatus))
		}
	}

	var samples []soakSample
	gor := 0
	sample := func(at time.Duration) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatalf("server gone: %v", err)
		}
		samples = append(samples, soakSample{
			at:         at,
			rssKB:      procKB(t, pid, "VmRSS"),
			fds:        len(ents),
			goroutines: lastGoroutines(t, logf, &gor),
			threads:    procKB(t, pid, "Threads"),
			inFlight:   int(inFlight.Load()),
		})
	}
	// idle samples the server with nothing in flight and the client's
	// keep-alive connections closed, after its next runtime log line.
	idle := func(at time.Duration) soakSample {
		client.CloseIdleConnections()
		time.Sleep(runtimeLogEvery + time.Second)
		sample(at)
		return samples[len(samples)-1]
	}
	before := idle(0)
	samples = samples[:0]
	t.Logf("idle before the load: rss %d kB, fds %d, goroutines %d, threads %d", before.rssKB, before.fds, before.goroutines, before.threads)

	t.Logf("soak: %v at %d requests/s against %d sim nodes", duration, rate, nodes)
	r := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	every := time.NewTicker(sampleEvery)
	defer every.Stop()
	start := time.Now()
	end := start.Add(duration)
	for now := start; now.Before(end); {
		select {
		case now = <-tick.C:
			select {
			case sem <- struct{}{}:
				sent.Add(1)
				wg.Add(1)
				go fire(pick(r))
			default:
				behind.Add(1) // 64 requests already in flight
			}
		case now = <-every.C:
			sample(now.Sub(start))
			last := samples[len(samples)-1]
			if len(samples)%12 == 0 {
				t.Logf("%6s  sent %6d  in flight %2d  rss %6d kB  fds %3d  goroutines %3d  threads %2d",
					last.at.Round(time.Second), sent.Load(), last.inFlight, last.rssKB, last.fds, last.goroutines, last.threads)
			}
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	loaded := samples
	after := idle(time.Since(start))

	// Every request sent was answered and is in the audit log, once.
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))].Round(time.Millisecond)
	}
	t.Logf("sent %d in %v (%.1f/s), %d not sent (64 in flight), %d failed; latency p50 %v p99 %v max %v",
		sent.Load(), elapsed.Round(time.Second), float64(sent.Load())/elapsed.Seconds(), behind.Load(), failed.Load(), pct(0.5), pct(0.99), pct(1))
	if len(wrong) > 0 {
		t.Errorf("%d unexpected answers, first: %q", len(wrong), wrong[:min(5, len(wrong))])
	}
	if int64(len(ids)) != sent.Load() {
		t.Errorf("distinct request ids answered: %d, sent %d", len(ids), sent.Load())
	}
	audited := map[string]bool{}
	for _, row := range sql(t, s.db, "SELECT id FROM requests") {
		audited[row] = true
	}
	missing := 0
	for id := range ids {
		if !audited[id] {
			missing++
		}
	}
	if missing > 0 || len(audited) != len(ids) {
		t.Errorf("audit log: %d requests rows for %d requests answered, %d answered requests not in it", len(audited), len(ids), missing)
	}
	if got := sqlOne(t, s.db, "SELECT count(*) FROM requests WHERE state <> 'done' OR status IS NULL"); got != "0" {
		t.Errorf("%s requests not done", got)
	}
	if got := sqlOne(t, s.db, "SELECT count(*) FROM requests q WHERE action IN ('status','power_on','power_off','restart') AND status = 200 AND node_count <> (SELECT count(*) FROM results WHERE request_id = q.id)"); got != "0" {
		t.Errorf("%s action requests whose results rows do not match their node count", got)
	}
	t.Logf("audit log: %s requests, %s results", sqlOne(t, s.db, "SELECT count(*) FROM requests"), sqlOne(t, s.db, "SELECT count(*) FROM results"))

	// Flat: each minute's floor, and the idle server before and after.
	window := min(time.Minute, max(duration/4, 2*sampleEvery))
	stats := func(from, to time.Duration, f func(soakSample) int) (lo int, avg float64) {
		lo, sum, n := -1, 0, 0
		for _, sm := range loaded {
			if sm.at >= from && sm.at < to {
				v := f(sm)
				if lo < 0 || v < lo {
					lo = v
				}
				sum += v
				n++
			}
		}
		if n == 0 {
			t.Fatalf("no samples between %v and %v", from, to)
		}
		return lo, float64(sum) / float64(n)
	}
	const notJudged = -1
	for _, m := range []struct {
		name      string
		f         func(soakSample) int
		avgSlack  int // allowed growth of the last minute's average over the first's, past 25%
		lowSlack  int // of the last minute's floor over the first's, past 25%
		idleSlack int // of idle after over idle before
	}{
		// RSS is not idle-judged: before the load the server has not warmed up.
		{"RSS kB", func(s soakSample) int { return s.rssKB }, 4096, notJudged, notJudged},
		{"open fds", func(s soakSample) int { return s.fds }, notJudged, 4, 2},
		{"goroutines", func(s soakSample) int { return s.goroutines }, notJudged, 4, 2},
		{"threads", func(s soakSample) int { return s.threads }, notJudged, notJudged, notJudged},
		{"in flight", func(s soakSample) int { return s.inFlight }, notJudged, notJudged, notJudged},
	} {
		firstLo, firstAvg := stats(0, window, m.f)
		lastLo, lastAvg := stats(duration-window, duration, m.f)
		b, a := m.f(before), m.f(after)
		t.Logf("%-10s  first %v: floor %6d avg %8.1f   last %v: floor %6d avg %8.1f (%+5.1f%%)   idle before %6d after %6d",
			m.name, window, firstLo, firstAvg, window, lastLo, lastAvg, 100*(lastAvg/firstAvg-1), b, a)
		if m.avgSlack != notJudged && lastAvg > firstAvg*1.25+float64(m.avgSlack) {
			t.Errorf("%s: the last minute's average %.1f is above the first's %.1f: a leak?", m.name, lastAvg, firstAvg)
		}
		if m.lowSlack != notJudged && lastLo > firstLo+firstLo/4+m.lowSlack {
			t.Errorf("%s: the last minute's floor %d is above the first's %d: a leak?", m.name, lastLo, firstLo)
		}
		if m.idleSlack != notJudged && a > b+m.idleSlack {
			t.Errorf("%s: idle after the load %d, before it %d: a leak?", m.name, a, b)
		}
	}
	if strings.Contains(readAll(t, logPath), "level=ERROR") {
		t.Errorf("server log has errors: see %s", logPath)
	}
}

func readAll(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
