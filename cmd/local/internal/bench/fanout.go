package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	fanoutNodes = 1000
	allNodes    = "node%5B0001-1000%5D" // node[0001-1000], URL-encoded
	sleepDelay  = "0.2"
	sleepFanout = 100
	exitFanout  = 50
)

// idealSleep is the wall time of 1,000 commands of 0.2 s, 100 at a time,
// if starting a process cost nothing.
var idealSleep = time.Duration(fanoutNodes/sleepFanout) * 200 * time.Millisecond

// nodeNames is node0001 ... node1000, one per line, as xargs reads them.
func nodeNames() string {
	var b strings.Builder
	for i := 1; i <= fanoutNodes; i++ {
		fmt.Fprintf(&b, "node%04d\n", i)
	}
	return b.String()
}

// benchFanout times the status of 1,000 nodes of the shipped sim platform
// with sim_delay 0.2 s at fan-out 100 over HTTP, against the ideal 2.0 s and
// the same 1,000 scripts under xargs -P 100; then reads the server's peak
// RSS.
func benchFanout(ctx context.Context, s *suite) []row {
	const (
		metric    = "status of 1,000 nodes, command sleeps 0.2 s, fan-out 100, HTTP + audit"
		target    = "<= 1.15 x ideal (2.30 s)"
		refMetric = "  same 1,000 commands under xargs -P 100 (no server)"
		rssMetric = "server peak RSS (VmHWM) after the 1,000-node fan-outs"
		rssTarget = "<= 60 MB"
	)
	fail := func(err error) []row {
		return []row{errRow(metric, target, err), errRow(rssMetric, rssTarget, err)}
	}
	dir := filepath.Join(s.dir, "fanout")
	sim, err := shippedPlatform(filepath.Join(s.repo, "cmd/local/etc/demo-topology.yaml"), "sim")
	if err != nil {
		return fail(err)
	}
	script, err := platformCommand(sim, "status")
	if err != nil {
		return fail(err)
	}
	// Every node is on, so every command exits 0 and xargs can tell a
	// failed baseline from a good one.
	if err := os.MkdirAll(filepath.Join(dir, "sim-state"), 0o755); err != nil {
		return fail(err)
	}
	nodes := make(map[string]node, fanoutNodes)
	for i := 1; i <= fanoutNodes; i++ {
		name := fmt.Sprintf("node%04d", i)
		nodes[name] = node{"platform": "sim", "sim_delay": sleepDelay}
		if err := os.WriteFile(filepath.Join(dir, "sim-state", name), []byte("on\n"), 0o644); err != nil {
			return fail(err)
		}
	}
	if err := writeTopology(filepath.Join(dir, "topology.yaml"), nodes, map[string]any{"sim": sim}); err != nil {
		return fail(err)
	}
	srv, err := s.startServer(ctx, dir, fmt.Sprintf("num_worker_commands=%d", sleepFanout))
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	tok, err := token("viewer")
	if err != nil {
		return fail(err)
	}

	// The same script, the node's name as $name, the same variables, the
	// same working folder.
	xargs := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, "xargs", "-P", fmt.Sprint(sleepFanout), "-n", "1",
			"/bin/sh", "-c", "name=$1\n"+script, "sh")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "sim_state_dir=sim-state", "sim_delay="+sleepDelay)
		cmd.Stdin = strings.NewReader(nodeNames())
		return cmd
	}

	// Warm the page cache for sh and sleep on both sides.
	if _, err := timedStatus(ctx, srv.url, "node%5B0001-0100%5D", tok, 100, "on"); err != nil {
		return fail(err)
	}
	self0, kids0, err := srv.cpu()
	if err != nil {
		return fail(err)
	}
	var ours, ref []time.Duration
	for i := range s.trials {
		s.logf("trial %d/%d", i+1, s.trials)
		d, err := timedStatus(ctx, srv.url, allNodes, tok, fanoutNodes, "on")
		if err != nil {
			return fail(err)
		}
		ours = append(ours, d)
		d, err = timeCommand(xargs())
		if err != nil {
			return fail(err)
		}
		ref = append(ref, d)
	}
	hwm, err := srv.peakRSS()
	if err != nil {
		return fail(err)
	}
	self1, kids1, err := srv.cpu()
	if err != nil {
		return fail(err)
	}
	cmds := time.Duration(len(ours) * fanoutNodes)

	m, r := median(ours), median(ref)
	return []row{
		{
			metric: metric, value: seconds(m), target: target,
			baseline: "ideal " + seconds(idealSleep), ratio: ratio(m.Seconds(), idealSleep.Seconds()),
			verdict: verdict(m.Seconds() <= 1.15*idealSleep.Seconds()),
			notes: []string{
				fmt.Sprintf("shipped sim platform (demo-topology.yaml), sim_delay 0.2; runs %s; median of %d; %.2f x the xargs -P 100 run beside it", spread(ours), len(ours), m.Seconds()/r.Seconds()),
				fmt.Sprintf("CPU per command: server %s, the command's processes (sh, sleep) %s", micros((self1-self0)/cmds), micros((kids1-kids0)/cmds)),
			},
		},
		{
			metric: refMetric, value: seconds(r), target: "reference",
			baseline: "ideal " + seconds(idealSleep), ratio: ratio(r.Seconds(), idealSleep.Seconds()),
			verdict: verdictInfo,
			notes:   []string{fmt.Sprintf("runs %s, interleaved with the server's", spread(ref))},
		},
		{
			metric: rssMetric, value: megabytes(hwm), target: rssTarget, verdict: verdict(hwm <= 60e6),
			notes: []string{fmt.Sprintf("VmHWM of the server process after %d requests for 1,000 nodes at fan-out 100 and a warm-up of 100", len(ours))},
		},
	}
}

// benchExit times 1,000 nodes whose status command is `exit 0` over HTTP,
// at the default fan-out of 50, against xargs -P 50 running the same 1,000
// /bin/sh -c commands.
func benchExit(ctx context.Context, s *suite) []row {
	const (
		metric = "status of 1,000 nodes, command `exit 0`, fan-out 50, HTTP + audit"
		target = "<= 1.5 x xargs -P 50"
	)
	fail := func(err error) []row { return []row{errRow(metric, target, err)} }
	dir := filepath.Join(s.dir, "exit")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	nodes := make(map[string]node, fanoutNodes)
	for i := 1; i <= fanoutNodes; i++ {
		nodes[fmt.Sprintf("node%04d", i)] = node{"platform": "exit0"}
	}
	platform := map[string]any{
		"variables": []string{},
		"status":    "exit 0",
		"power_on":  "exit 0",
		"power_off": "exit 0",
		"restart":   "exit 0",
	}
	if err := writeTopology(filepath.Join(dir, "topology.yaml"), nodes, map[string]any{"exit0": platform}); err != nil {
		return fail(err)
	}
	srv, err := s.startServer(ctx, dir, fmt.Sprintf("num_worker_commands=%d", exitFanout))
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	tok, err := token("viewer")
	if err != nil {
		return fail(err)
	}
	xargs := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, "xargs", "-P", fmt.Sprint(exitFanout), "-n", "1", "/bin/sh", "-c", "exit 0", "sh")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(nodeNames())
		return cmd
	}
	if _, err := timedStatus(ctx, srv.url, allNodes, tok, fanoutNodes, "on"); err != nil {
		return fail(err)
	}
	if _, err := timeCommand(xargs()); err != nil {
		return fail(err)
	}
	var ours, ref []time.Duration
	n := max(5, 2*s.trials-1)
	for i := range n {
		s.logf("trial %d/%d", i+1, n)
		d, err := timedStatus(ctx, srv.url, allNodes, tok, fanoutNodes, "on")
		if err != nil {
			return fail(err)
		}
		ours = append(ours, d)
		d, err = timeCommand(xargs())
		if err != nil {
			return fail(err)
		}
		ref = append(ref, d)
	}
	m, r := median(ours), median(ref)
	hwm, _ := srv.peakRSS()
	return []row{{
		metric: metric, value: seconds(m), target: target,
		baseline: "xargs " + seconds(r), ratio: ratio(m.Seconds(), r.Seconds()),
		verdict: verdict(m.Seconds() <= 1.5*r.Seconds()),
		notes: []string{
			fmt.Sprintf("server runs %s; xargs runs %s; medians of %d interleaved pairs after one warm-up each; server peak RSS %s", spread(ours), spread(ref), n, megabytes(hwm)),
		},
	}}
}

// platformCommand is one command of a platform read by shippedPlatform.
func platformCommand(platform any, action string) (string, error) {
	m, ok := platform.(map[string]any)
	if !ok {
		return "", fmt.Errorf("platform is a %T, want a mapping", platform)
	}
	c, ok := m[action].(string)
	if !ok {
		return "", fmt.Errorf("platform has no %s command", action)
	}
	return c, nil
}

// micros formats d in microseconds.
func micros(d time.Duration) string { return fmt.Sprintf("%d us", d.Microseconds()) }

// megabytes formats n bytes in MB of 10^6 bytes, the stricter reading of
// the targets.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
