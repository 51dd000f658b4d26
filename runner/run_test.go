package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// testPath is the PATH commands get in tests, so that they find sleep, env
// and friends without the test runner's own environment.
const testPath = "PATH=/usr/local/bin:/usr/bin:/bin"

// newRunner loads src and returns a runner whose commands run in a fresh
// temporary directory, which it also returns.
func newRunner(tb testing.TB, src string, opts Options) (*Runner, string) {
	tb.Helper()
	dir := tb.TempDir()
	if opts.ScriptsDir == "" {
		opts.ScriptsDir = dir
	}
	if opts.BaseEnv == nil {
		opts.BaseEnv = []string{testPath}
	}
	return New(load(tb, src), opts), dir
}

// run runs action on names, checks that report was called once per name
// and never concurrently, and returns the results by node.
// numberedNodes starts a topology of n nodes n0, n1, ... on platform p;
// the caller appends the platforms section.
func numberedNodes(n int) (*strings.Builder, []string) {
	src := &strings.Builder{}
	src.WriteString("static_nodes:\n")
	names := make([]string, 0, n)
	for i := range n {
		name := "n" + strconv.Itoa(i)
		names = append(names, name)
		src.WriteString("  " + name + ": {platform: p}\n")
	}
	return src, names
}

func run(tb testing.TB, ctx context.Context, r *Runner, action handler.Action, names ...string) map[string]handler.Result {
	tb.Helper()
	got := map[string]handler.Result{}
	var inReport atomic.Int32
	overlap := false
	r.Run(ctx, action, names, func(res handler.Result) {
		if inReport.Add(1) != 1 {
			overlap = true
		}
		defer inReport.Add(-1)
		if _, dup := got[res.Node]; dup {
			tb.Errorf("report: got %s twice, want once", res.Node)
		}
		got[res.Node] = res
	})
	if overlap {
		tb.Errorf("report: got concurrent calls, want one at a time")
	}
	if len(got) != len(names) {
		tb.Errorf("report: got %d results, want %d", len(got), len(names))
	}
	return got
}

// readFile returns the content of a file the command wrote.
func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// alive reports whether pid names a process that has not exited (a zombie
// counts as exited: its parent may simply not have reaped it yet).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// waitDead fails unless pid is gone within a second.
func waitDead(tb testing.TB, pid int) {
	tb.Helper()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	tb.Errorf("process %d: got still running, want killed with its group", pid)
}

func readPid(tb testing.TB, path string) int {
	tb.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(tb, path)))
	if err != nil {
		tb.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

func TestStatusStates(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, `static_nodes:
  on:      {platform: dflt, code: "0"}
  off:     {platform: dflt, code: "111"}
  broken:  {platform: dflt, code: "1"}
  custom0: {platform: custom, code: "0"}
  custom3: {platform: custom, code: "3"}
  custom111: {platform: custom, code: "111"}
platforms:
  dflt:
    variables: [code]
    status: |
      echo "power is whatever"
      if [ "$code" = 1 ]; then printf 'first\nIPMI session failed  \n\n' >&2; fi
      exit "$code"
  custom:
    variables: [code]
    status: echo "power is whatever"; exit "$code"
    status_off_exit_code: 3
`, Options{})
	yes, no := true, false
	tests := []struct {
		node    string
		exit    int
		state   string
		success bool
		running *bool
		err     string
	}{
		{"on", 0, handler.StateOn, true, &yes, ""},
		{"off", 111, handler.StateOff, true, &no, ""},
		{"broken", 1, handler.StateUnknown, false, nil, "exit 1: IPMI session failed"},
		{"custom0", 0, handler.StateOn, true, &yes, ""},
		{"custom3", 3, handler.StateOff, true, &no, ""},
		{"custom111", 111, handler.StateUnknown, false, nil, "exit 111: power is whatever"},
	}
	names := make([]string, len(tests))
	for i, tt := range tests {
		names[i] = tt.node
	}
	got := run(t, t.Context(), r, handler.ActionStatus, names...)
	for _, tt := range tests {
		res := got[tt.node]
		if res.ExitCode != tt.exit || res.State != tt.state || res.Success != tt.success || res.Error != tt.err {
			t.Errorf("%s: got exit %d state %q success %v error %q, want exit %d state %q success %v error %q",
				tt.node, res.ExitCode, res.State, res.Success, res.Error, tt.exit, tt.state, tt.success, tt.err)
		}
		if (res.Running == nil) != (tt.running == nil) || res.Running != nil && *res.Running != *tt.running {
			t.Errorf("%s: got running %v, want %v", tt.node, fmtBoolPtr(res.Running), fmtBoolPtr(tt.running))
		}
		if !res.Ran || res.Missing || res.TimedOut || res.Action != handler.ActionStatus {
			t.Errorf("%s: got ran %v missing %v timed out %v action %q, want true false false status", tt.node, res.Ran, res.Missing, res.TimedOut, res.Action)
		}
		if res.Stdout != "power is whatever\n" {
			t.Errorf("%s: got stdout %q, want %q", tt.node, res.Stdout, "power is whatever\n")
		}
	}
}

func fmtBoolPtr(b *bool) string {
	if b == nil {
		return "nil"
	}
	return strconv.FormatBool(*b)
}

func TestPowerActionStates(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, `static_nodes:
  good: {platform: p, code: "0"}
  bad:  {platform: p, code: "2"}
  aws1: {platform: aws}
platforms:
  p:
    variables: [code]
    power_on: echo "starting $name"; exit "$code"
    power_off: exit "$code"
  aws:
    power_on: exit 0
`, Options{})
	tests := []struct {
		action handler.Action
		node   string
		exit   int
		state  string
		ok     bool
		ran    bool
		err    string
	}{
		{handler.ActionPowerOn, "good", 0, handler.StateOK, true, true, ""},
		{handler.ActionPowerOn, "bad", 2, handler.StateFailed, false, true, "exit 2: starting"},
		{handler.ActionPowerOff, "bad", 2, handler.StateFailed, false, true, "exit 2"},
		{handler.ActionRestart, "aws1", -1, handler.StateFailed, false, false, `platform "aws" defines no restart command`},
		{handler.ActionStatus, "aws1", -1, handler.StateUnknown, false, false, `platform "aws" defines no status command`},
	}
	for _, tt := range tests {
		t.Run(string(tt.action)+"/"+tt.node, func(t *testing.T) {
			t.Parallel()
			res := run(t, t.Context(), r, tt.action, tt.node)[tt.node]
			if res.ExitCode != tt.exit || res.State != tt.state || res.Success != tt.ok || res.Ran != tt.ran || res.Error != tt.err {
				t.Errorf("got exit %d state %q success %v ran %v error %q, want exit %d state %q success %v ran %v error %q",
					res.ExitCode, res.State, res.Success, res.Ran, res.Error, tt.exit, tt.state, tt.ok, tt.ran, tt.err)
			}
			if res.Running != nil {
				t.Errorf("got running %v, want nil for a power action", *res.Running)
			}
		})
	}
}

func TestNotRunnable(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, `static_nodes:
  node07:  {platform: ipmi, ipmi_password: secret}
  nobody:  {ip: 10.0.0.1}
  strange: {platform: foo}
platforms:
  ipmi:
    variables: [name, ipmi_username, ipmi_password]
    status: touch ran.marker
    power_on: touch ran.marker
`, Options{})
	tests := []struct {
		node, platform, state, err string
		missing                    bool
		action                     handler.Action
	}{
		{"node07", "ipmi", handler.StateUnknown, `missing variable "ipmi_username"`, false, handler.ActionStatus},
		{"node07", "ipmi", handler.StateFailed, `missing variable "ipmi_username"`, false, handler.ActionPowerOn},
		{"ghost", "missing", handler.StateMissing, "node is not in the topology", true, handler.ActionStatus},
		{"nobody", "missing", handler.StateUnknown, "node has no platform", false, handler.ActionStatus},
		{"strange", "foo", handler.StateFailed, `platform "foo" is not defined`, false, handler.ActionPowerOn},
	}
	for _, tt := range tests {
		res := run(t, t.Context(), r, tt.action, tt.node)[tt.node]
		if res.Platform != tt.platform || res.State != tt.state || res.Error != tt.err || res.Missing != tt.missing {
			t.Errorf("%s %s: got platform %q state %q error %q missing %v, want %q %q %q %v",
				tt.action, tt.node, res.Platform, res.State, res.Error, res.Missing, tt.platform, tt.state, tt.err, tt.missing)
		}
		if res.Ran || res.Success || res.ExitCode != -1 || res.Running != nil || res.TimedOut {
			t.Errorf("%s %s: got ran %v success %v exit %d running %v timed out %v, want false false -1 nil false",
				tt.action, tt.node, res.Ran, res.Success, res.ExitCode, fmtBoolPtr(res.Running), res.TimedOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ran.marker")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker: got %v, want no marker file: nothing may run", err)
	}
	res := run(t, t.Context(), r, handler.ActionStatus, "node07")["node07"]
	want := map[string]string{"name": "node07", "ipmi_password": handler.Redacted}
	if !mapsEqual(res.Variables, want) {
		t.Errorf("variables: got %v, want %v", res.Variables, want)
	}
}

func TestMissingSeveralVariables(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, "static_nodes:\n  n: {platform: p}\nplatforms:\n  p: {variables: [a, b], status: exit 0}\n", Options{})
	res := run(t, t.Context(), r, handler.ActionStatus, "n")["n"]
	if want := `missing variables "a", "b"`; res.Error != want {
		t.Errorf("got error %q, want %q", res.Error, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestOptionalVariables(t *testing.T) {
	t.Parallel()
	topo := load(t, `static_nodes:
  dflt: {platform: ipmi, ipmi_username: admin}
  over: {platform: ipmi, ipmi_username: admin, ipmi_port: 0624, ipmi_host: bmc7}
platforms:
  ipmi:
    variables: [name, ipmi_username]
    optional_variables:
      ipmi_host: ""
      ipmi_port: "623"
    status: exit 0
`)
	r := New(topo, Options{})
	tests := []struct {
		node string
		want map[string]string
	}{
		{"dflt", map[string]string{"name": "dflt", "ipmi_username": "admin", "ipmi_host": "", "ipmi_port": "623"}},
		{"over", map[string]string{"name": "over", "ipmi_username": "admin", "ipmi_host": "bmc7", "ipmi_port": "0624"}},
	}
	for _, tt := range tests {
		j, res := r.prepare(handler.ActionStatus, tt.node)
		if j == nil {
			t.Fatalf("%s: got not runnable (%s), want a job", tt.node, res.Error)
		}
		if !reflect.DeepEqual(j.res.Variables, tt.want) {
			t.Errorf("%s variables: got %v, want %v", tt.node, j.res.Variables, tt.want)
		}
		for k, v := range tt.want {
			if !slices.Contains(j.env, k+"="+v) {
				t.Errorf("%s env: got %q, want it to hold %s=%s", tt.node, j.env, k, v)
			}
		}
	}
}

func TestVariablesArriveByteForByte(t *testing.T) {
	t.Parallel()
	// The value is YAML double-quoted: \n is a newline, \u00e9 and ✓ are
	// unicode, and every shell metacharacter that could inject is present.
	const want = "a b \"c\" $(touch pwned); 'd'\nline2 `touch pwned` \\ \u00e9 ✓ ${x:-y} *"
	src := `static_nodes:
  n1:
    platform: p
    v: "a b \"c\" $(touch pwned); 'd'\nline2 ` + "`touch pwned`" + ` \\ \u00e9 ✓ ${x:-y} *"
    ipmi_password: "s3cret 'x'"
platforms:
  p:
    variables: [v, ipmi_password]
    status: printf %s "$v" > v.out; printf %s "$ipmi_password" > pw.out
`
	r, dir := newRunner(t, src, Options{})
	res := run(t, t.Context(), r, handler.ActionStatus, "n1")["n1"]
	if res.State != handler.StateOn {
		t.Fatalf("got state %q (%s), want on", res.State, res.Error)
	}
	if got := readFile(t, filepath.Join(dir, "v.out")); got != want {
		t.Errorf("v in the environment:\ngot  %q\nwant %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(dir, "pw.out")), "s3cret 'x'"; got != want {
		t.Errorf("ipmi_password in the environment: got %q, want %q", got, want)
	}
	if got := res.Variables["v"]; got != want {
		t.Errorf("Variables[v]: got %q, want %q", got, want)
	}
	if got := res.Variables["ipmi_password"]; got != handler.Redacted {
		t.Errorf("Variables[ipmi_password]: got %q, want %q", got, handler.Redacted)
	}
	cwd, _ := os.Getwd()
	for _, d := range []string{dir, cwd} {
		if _, err := os.Stat(filepath.Join(d, "pwned")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pwned in %s: got %v, want no such file", d, err)
		}
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, `static_nodes:
  node03: {platform: ipmi, ipmi_username: admin, ipmi_password: adminpass, KEEP: node}
platforms:
  ipmi:
    variables: [name, ipmi_username]
    optional_variables: {ipmi_port: "623"}
    status: env > env.out
`, Options{BaseEnv: []string{testPath, "KEEP=base", "ipmi_username=from-base", "ipmi_port=1", "ipmi_username=again", "name=server"}})
	res := run(t, t.Context(), r, handler.ActionStatus, "node03")["node03"]
	if res.State != handler.StateOn {
		t.Fatalf("got state %q (%s), want on", res.State, res.Error)
	}
	// One entry per name in what the command is given, not only in what
	// the exec package makes of it.
	j, _ := r.prepare(handler.ActionStatus, "node03")
	keys := map[string]bool{}
	for _, kv := range j.env {
		k, _, _ := strings.Cut(kv, "=")
		if keys[k] {
			t.Errorf("job env: got %s more than once in %q, want once", k, j.env)
		}
		keys[k] = true
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "env.out"))), "\n")
	count := map[string][]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		count[k] = append(count[k], v)
	}
	tests := []struct {
		key  string
		want []string // nil: absent
	}{
		{"name", []string{"node03"}},
		{"ipmi_username", []string{"admin"}},
		{"ipmi_port", []string{"623"}},
		{"KEEP", []string{"base"}},
		{"ipmi_password", nil},
		{"platform", nil},
	}
	for _, tt := range tests {
		if got := count[tt.key]; !slices.Equal(got, tt.want) {
			t.Errorf("env %s: got %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestCommandSurroundings(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, `static_nodes:
  cwd:   {platform: p, script: pwd -P}
  stdin: {platform: p, script: "cat; readlink /proc/$$/fd/0"}
platforms:
  p:
    variables: [script]
    status: eval "$script"
    timeout: 2s
`, Options{})
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := run(t, t.Context(), r, handler.ActionStatus, "cwd", "stdin")
	tests := []struct{ node, stdout string }{
		{"cwd", realDir + "\n"},
		{"stdin", "/dev/null\n"},
	}
	for _, tt := range tests {
		res := got[tt.node]
		if res.Stdout != tt.stdout || res.State != handler.StateOn {
			t.Errorf("%s: got stdout %q state %q (%s), want %q on", tt.node, res.Stdout, res.State, res.Error, tt.stdout)
		}
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, `static_nodes:
  grandchild: {platform: p, script: "sleep 10 & echo $! > grandchild.pid; sleep 10"}
  subshell:   {platform: p, script: "sh -c 'echo $$ > subshell.pid; sleep 10' & sleep 10"}
  stubborn:   {platform: p, script: "trap '' TERM; sleep 10 & echo $! > stubborn.pid; sleep 10"}
  partial:    {platform: p, script: "echo before; echo oops >&2; sleep 10"}
  graceful:
    platform: p
    script: |
      trap 'wait; exit 1' TERM
      sh -c 'trap "echo term > got.term; exit 0" TERM; sleep 10 & wait' &
      wait
platforms:
  p:
    variables: [script]
    status: eval "$script"
    power_off: eval "$script"
    timeout: 1s
`, Options{})
	tests := []struct {
		node, pidFile string
		action        handler.Action
		state         string
	}{
		{"grandchild", "grandchild.pid", handler.ActionStatus, handler.StateUnknown},
		{"subshell", "subshell.pid", handler.ActionStatus, handler.StateUnknown},
		{"stubborn", "stubborn.pid", handler.ActionPowerOff, handler.StateFailed},
		{"partial", "", handler.ActionPowerOff, handler.StateFailed},
		{"graceful", "", handler.ActionPowerOff, handler.StateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			res := run(t, t.Context(), r, tt.action, tt.node)[tt.node]
			took := time.Since(start)
			if took > 2*time.Second {
				t.Errorf("Run took %v, want about 1s (timeout) + %v (SIGKILL grace) at most", took, killGrace)
			}
			if !res.TimedOut || res.ExitCode != -1 || res.State != tt.state || res.Success || !res.Ran || res.Error != "timed out after 1s" {
				t.Errorf("got timed out %v exit %d state %q success %v ran %v error %q, want true -1 %q false true %q",
					res.TimedOut, res.ExitCode, res.State, res.Success, res.Ran, res.Error, tt.state, "timed out after 1s")
			}
			if res.Duration < time.Second || res.Duration > 2*time.Second {
				t.Errorf("got duration %v, want about 1s", res.Duration)
			}
			switch tt.node {
			case "partial":
				if res.Stdout != "before\n" || res.Stderr != "oops\n" {
					t.Errorf("got stdout %q stderr %q, want the output written before the deadline", res.Stdout, res.Stderr)
				}
			case "graceful":
				// SIGTERM reaches every process in the group, so a
				// background helper can clean up before SIGKILL.
				if _, err := os.Stat(filepath.Join(dir, "got.term")); err != nil {
					t.Errorf("background process: got %v, want it to have caught SIGTERM", err)
				}
			default:
				waitDead(t, readPid(t, filepath.Join(dir, tt.pidFile)))
			}
		})
	}
}

func TestShellExitLeavesNoWaiting(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, `static_nodes:
  bg: {platform: p}
platforms:
  p:
    status: sleep 100 & echo $! > bg.pid; echo hi
    timeout: 5s
`, Options{})
	start := time.Now()
	res := run(t, t.Context(), r, handler.ActionStatus, "bg")["bg"]
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run took %v, want it to return when the shell exits", took)
	}
	if res.Stdout != "hi\n" || res.State != handler.StateOn || res.TimedOut {
		t.Errorf("got stdout %q state %q timed out %v, want %q on false", res.Stdout, res.State, res.TimedOut, "hi\n")
	}
	waitDead(t, readPid(t, filepath.Join(dir, "bg.pid")))
}

func TestEscapedProcessDoesNotHoldRun(t *testing.T) {
	t.Parallel()
	// setsid takes the helper out of the command's process group, out of
	// reach of the group kill, while it still holds stdout open.
	r, dir := newRunner(t, `static_nodes:
  n: {platform: p}
platforms:
  p:
    status: |
      setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped.pid; exec sleep 10' &
      while [ ! -e escaped.pid ]; do sleep 0.01; done
      echo hi
    timeout: 5s
`, Options{})
	start := time.Now()
	res := run(t, t.Context(), r, handler.ActionStatus, "n")["n"]
	took := time.Since(start)
	_ = syscall.Kill(readPid(t, filepath.Join(dir, "escaped.pid")), syscall.SIGKILL)
	if took > time.Second {
		t.Errorf("Run took %v, want it to stop reading about %v after the shell exits", took, drainGrace)
	}
	if res.Stdout != "hi\n" || res.State != handler.StateOn {
		t.Errorf("got stdout %q state %q, want %q on", res.Stdout, res.State, "hi\n")
	}
}

func TestKilledBySignal(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, "static_nodes:\n  n: {platform: p}\nplatforms:\n  p: {power_on: 'kill -KILL $$'}\n", Options{})
	res := run(t, t.Context(), r, handler.ActionPowerOn, "n")["n"]
	if want := "killed by signal 9 (killed)"; res.ExitCode != -1 || res.Error != want || res.TimedOut || res.State != handler.StateFailed {
		t.Errorf("got exit %d error %q timed out %v state %q, want -1 %q false failed", res.ExitCode, res.Error, res.TimedOut, res.State, want)
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "absent")
	r, _ := newRunner(t, "static_nodes:\n  n: {platform: p}\nplatforms:\n  p: {status: exit 0}\n", Options{ScriptsDir: dir})
	res := run(t, t.Context(), r, handler.ActionStatus, "n")["n"]
	if res.Ran || res.ExitCode != -1 || res.State != handler.StateUnknown || !strings.HasPrefix(res.Error, "could not start: ") {
		t.Errorf("got ran %v exit %d state %q error %q, want false -1 unknown \"could not start: ...\"", res.Ran, res.ExitCode, res.State, res.Error)
	}
}

func TestOutputCap(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, `static_nodes:
  big:   {platform: p, script: "head -c 1048576 /dev/zero | tr '\\0' a; echo done >&2"}
  small: {platform: p, script: "echo out; echo err >&2"}
  both:  {platform: p, script: "head -c 5000000 /dev/zero >&2; head -c 2000 /dev/zero"}
platforms:
  p:
    variables: [script]
    status: eval "$script"
`, Options{OutputCap: 1024})
	got := run(t, t.Context(), r, handler.ActionStatus, "big", "small", "both")
	tests := []struct {
		node               string
		stdout, stderr     string
		outTrunc, errTrunc bool
	}{
		{"big", strings.Repeat("a", 1024), "done\n", true, false},
		{"small", "out\n", "err\n", false, false},
		{"both", strings.Repeat("\x00", 1024), strings.Repeat("\x00", 1024), true, true},
	}
	for _, tt := range tests {
		res := got[tt.node]
		if res.Stdout != tt.stdout || res.Stderr != tt.stderr || res.StdoutTruncated != tt.outTrunc || res.StderrTruncated != tt.errTrunc {
			t.Errorf("%s: got stdout %d bytes (truncated %v) stderr %q... (truncated %v), want %d bytes (%v) and %q... (%v)",
				tt.node, len(res.Stdout), res.StdoutTruncated, trim(res.Stderr), res.StderrTruncated,
				len(tt.stdout), tt.outTrunc, trim(tt.stderr), tt.errTrunc)
		}
		if res.State != handler.StateOn {
			t.Errorf("%s: got state %q (%s), want on: a capped stream must not block the command", tt.node, res.State, res.Error)
		}
	}
}

// Not parallel: it measures the allocations of the whole test binary.
func TestLargeOutputStaysSmall(t *testing.T) {
	r, _ := newRunner(t, "static_nodes:\n  n: {platform: p}\nplatforms:\n  p: {status: head -c 100000000 /dev/zero}\n", Options{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res := run(t, t.Context(), r, handler.ActionStatus, "n")["n"]
	runtime.ReadMemStats(&after)
	if len(res.Stdout) != DefaultOutputCap || !res.StdoutTruncated || res.State != handler.StateOn {
		t.Errorf("got %d bytes (truncated %v) state %q, want %d bytes, truncated, on", len(res.Stdout), res.StdoutTruncated, res.State, DefaultOutputCap)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("allocated %d bytes for 100 MB of output, want well under 4 MiB", got)
	}
}

func trim(s string) string { return s[:min(len(s), 8)] }

func TestCaptureText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		buf       string
		truncated bool
		want      string
	}{
		{"whole", "abc", false, "abc"},
		{"cut inside a character", "ab\xe2\x9c", true, "ab"},
		{"cut after a character", "ab\xe2\x9c\x93", true, "ab✓"},
		{"not truncated keeps bytes", "ab\xe2\x9c", false, "ab\xe2\x9c"},
	}
	for _, tt := range tests {
		c := capture{buf: []byte(tt.buf), truncated: tt.truncated}
		if got := c.text(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	long := strings.Repeat("é", 150) // 300 bytes
	if got := lastLine("x\n" + long + "\n\n"); len(got) != 200 || got != strings.Repeat("é", 100) {
		t.Errorf("lastLine: got %d bytes, want 200 bytes of whole characters", len(got))
	}
}

func TestFanOutBound(t *testing.T) {
	t.Parallel()
	src, names := numberedNodes(10)
	// Each command records when it started and ended, by the clock of the
	// machine, while it is certainly running.
	src.WriteString(`platforms:
  p:
    status: s=$(date +%s%N); sleep 0.1; e=$(date +%s%N); echo "$s $e" >> spans
`)
	const workers = 3
	r, dir := newRunner(t, src.String(), Options{Workers: workers})
	got := run(t, t.Context(), r, handler.ActionStatus, names...)
	for _, name := range names {
		if got[name].State != handler.StateOn {
			t.Fatalf("%s: got state %q (%s), want on", name, got[name].State, got[name].Error)
		}
	}
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "spans"))), "\n") {
		s, e, _ := strings.Cut(l, " ")
		start, err1 := strconv.ParseInt(s, 10, 64)
		end, err2 := strconv.ParseInt(e, 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("span %q: want two nanosecond times", l)
		}
		edges = append(edges, edge{start, +1}, edge{end, -1})
	}
	if len(edges) != 2*len(names) {
		t.Fatalf("spans: got %d, want %d", len(edges)/2, len(names))
	}
	// Ends sort before starts at the same instant.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	if peak > workers || peak < 2 {
		t.Errorf("concurrency: got a peak of %d commands, want 2..%d", peak, workers)
	}
}

func TestContextEnd(t *testing.T) {
	t.Parallel()
	src, names := numberedNodes(6)
	src.WriteString("platforms:\n  p:\n    status: echo $$ > $name.pid; sleep 10\n    variables: [name]\n")
	r, dir := newRunner(t, src.String(), Options{Workers: 2})

	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		got := run(t, ctx, r, handler.ActionStatus, names...)
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Errorf("Run took %v, want it to end soon after the 300ms deadline", took)
		}
		ran := 0
		for _, name := range names {
			res := got[name]
			if !res.TimedOut || res.ExitCode != -1 || res.State != handler.StateUnknown || res.Success {
				t.Errorf("%s: got timed out %v exit %d state %q success %v, want true -1 unknown false", name, res.TimedOut, res.ExitCode, res.State, res.Success)
			}
			want := "not run: request deadline reached"
			if res.Ran {
				ran++
				want = "timed out: request deadline reached"
				waitDead(t, readPid(t, filepath.Join(dir, name+".pid")))
			}
			if res.Error != want {
				t.Errorf("%s: got error %q, want %q", name, res.Error, want)
			}
		}
		if ran != 2 {
			t.Errorf("got %d commands run, want 2 (the workers) before the deadline", ran)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got := run(t, ctx, r, handler.ActionStatus, names...)
		for _, name := range names {
			if res := got[name]; res.Ran || !res.TimedOut || res.Error != "not run: request canceled" {
				t.Errorf("%s: got ran %v timed out %v error %q, want false true %q", name, res.Ran, res.TimedOut, res.Error, "not run: request canceled")
			}
		}
	})
}

func TestReportSerialized(t *testing.T) {
	t.Parallel()
	src, names := numberedNodes(40)
	src.WriteString("platforms:\n  p: {status: exit 0}\n")
	r, _ := newRunner(t, src.String(), Options{Workers: 8})
	var inside, peak atomic.Int32
	seen := map[string]int{}
	r.Run(t.Context(), handler.ActionStatus, append(names, "ghost"), func(res handler.Result) {
		n := inside.Add(1)
		if n > peak.Load() {
			peak.Store(n)
		}
		time.Sleep(time.Millisecond) // widen the window an overlap would need
		seen[res.Node]++
		inside.Add(-1)
	})
	if got := peak.Load(); got != 1 {
		t.Errorf("report: got %d calls at once, want 1", got)
	}
	for _, name := range append(names, "ghost") {
		if seen[name] != 1 {
			t.Errorf("report for %s: got %d calls, want 1", name, seen[name])
		}
	}
}

func BenchmarkRunExit0(b *testing.B) {
	src, names := numberedNodes(1000)
	src.WriteString("platforms:\n  p: {status: exit 0, variables: [name]}\n")
	r, _ := newRunner(b, src.String(), Options{})
	for b.Loop() {
		r.Run(b.Context(), handler.ActionStatus, names, func(res handler.Result) {
			if !res.Success {
				b.Fatalf("%s: %s", res.Node, res.Error)
			}
		})
	}
}
