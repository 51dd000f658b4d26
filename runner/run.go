package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/openflighthpc/flight-power/handler"
)

// Defaults for the zero values of Options.
const (
	DefaultWorkers   = 50
	DefaultTimeout   = 30 * time.Second
	DefaultOutputCap = 64 << 10
	DefaultShell     = "/bin/sh"
)

const (
	// killGrace is how long a command's process group has between SIGTERM
	// and SIGKILL once its deadline passes.
	killGrace = 250 * time.Millisecond
	// drainGrace bounds reading output after the shell and its group are
	// gone, for pipes still held by a process that left the group.
	drainGrace = 100 * time.Millisecond
	// errorMax bounds the stderr line quoted in Result.Error.
	errorMax = 200
	// platformMissing is the platform reported for unknown nodes and nodes
	// without a platform, as the original server named it.
	platformMissing = "missing"
)

// Options configure a Runner. Zero values take the defaults.
type Options struct {
	Workers        int           // commands running at once across one Run, default 50
	DefaultTimeout time.Duration // per-command deadline when the platform sets none, default 30s
	ScriptsDir     string        // working directory of commands; "" = the server's cwd
	BaseEnv        []string      // KEY=VALUE every command starts from; the caller has removed the server's secrets
	OutputCap      int           // bytes kept per stream, default 64 KiB
	Shell          string        // default /bin/sh
	Logger         *slog.Logger  // nil = discard
	// Redact lists values scrubbed from every command's output and error
	// besides the secret-looking variables: the server's JWT secret, which
	// no command is given but one could read from the conf file.
	Redact []string
}

// Runner runs a topology's power commands. It satisfies handler.Runner and
// is safe for concurrent use.
type Runner struct {
	topo    *Topology
	opts    Options
	baseEnv []string // opts.BaseEnv, one entry per name
	secrets []string // Redact and the secret-looking values of baseEnv
	scrub   *scrubber
	log     *slog.Logger
}

var _ handler.Runner = (*Runner)(nil)

// New returns a Runner for t.
func New(t *Topology, opts Options) *Runner {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultTimeout
	}
	if opts.OutputCap <= 0 {
		opts.OutputCap = DefaultOutputCap
	}
	if opts.Shell == "" {
		opts.Shell = DefaultShell
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		topo:    t,
		opts:    opts,
		baseEnv: dedupEnv(opts.BaseEnv),
		log:     log.With("component", "runner"),
	}
	r.secrets = append(secretValues(r.baseEnv, nil), opts.Redact...)
	r.scrub = newScrubber(r.secrets)
	return r
}

// Topology is the topology the runner was built with.
func (r *Runner) Topology() *Topology { return r.topo }

// Nodes lists every node, sorted by name.
func (r *Runner) Nodes() []handler.Node { return r.topo.Nodes() }

// Groups lists every static group, sorted by name.
func (r *Runner) Groups() []handler.Group { return r.topo.Groups() }

// job is one command ready to start.
type job struct {
	res     handler.Result // filled in up to the point of running
	plat    *platform
	script  string
	env     []string
	timeout time.Duration
	scrub   *scrubber // nil: nothing to scrub
}

// Run runs action on every named node, at most Options.Workers at once, and
// calls report once per name from the calling goroutine as each finishes.
// Names that cannot run (unknown node, no or undefined platform, no command
// for action, missing variable) are reported without starting anything.
// When ctx ends, running commands are killed with their process group and
// names not yet started are reported as not run. Run returns after every
// name has been reported.
func (r *Runner) Run(ctx context.Context, action handler.Action, names []string, report func(handler.Result)) {
	var ready []*job
	var skipped []handler.Result
	for _, name := range names {
		j, res := r.prepare(action, name)
		if j == nil {
			skipped = append(skipped, res)
			continue
		}
		ready = append(ready, j)
	}

	// Workers hand results to this goroutine, which alone calls report, so
	// report is never concurrent and a slow report does not hold a worker.
	results := make(chan handler.Result, len(ready))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.opts.Workers, len(ready)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ready) {
					return
				}
				results <- r.execute(ctx, ready[i])
			}
		})
	}
	for _, res := range skipped {
		report(res)
	}
	for range len(ready) {
		report(<-results)
	}
	wg.Wait()
}

// prepare resolves name to a job, or to a finished result when nothing can
// run.
func (r *Runner) prepare(action handler.Action, name string) (*job, handler.Result) {
	res := handler.Result{
		Node:     name,
		Platform: platformMissing,
		Action:   action,
		Start:    time.Now(),
		ExitCode: -1,
	}
	fail := func(msg string) (*job, handler.Result) {
		res.State, res.Success, res.Running = failedState(action), false, nil
		res.Error = msg
		return nil, res
	}
	n, ok := r.topo.nodes[name]
	if !ok {
		res.Missing = true
		res.State = handler.StateMissing
		res.Error = "node is not in the topology"
		return nil, res
	}
	if !action.Valid() {
		return fail(fmt.Sprintf("unknown action %q", action))
	}
	if n.platform == "" {
		return fail("node has no platform")
	}
	res.Platform = n.platform
	p, ok := r.topo.platforms[n.platform]
	if !ok {
		return fail(fmt.Sprintf("platform %q is not defined", n.platform))
	}
	script, ok := p.commands[action]
	if !ok {
		return fail(fmt.Sprintf("platform %q defines no %s command", p.name, action))
	}

	vars := make(map[string]string, len(p.required)+len(p.optional))
	env := make([]string, 0, len(r.baseEnv)+len(p.required)+len(p.optional))
	var missing []string
	for _, v := range p.required {
		val, ok := n.value(v)
		if !ok {
			missing = append(missing, fmt.Sprintf("%q", v))
			continue
		}
		vars[v] = val
	}
	for _, o := range p.optional {
		val, ok := n.value(o.name)
		if !ok {
			val = o.def
		}
		vars[o.name] = val
	}
	res.Variables = handler.RedactVariables(vars)
	switch len(missing) {
	case 0:
	case 1:
		return fail("missing variable " + missing[0])
	default:
		return fail("missing variables " + strings.Join(missing, ", "))
	}

	// The platform's variables replace base entries of the same name so that
	// each name has exactly one value.
	for _, kv := range r.baseEnv {
		k, _, _ := strings.Cut(kv, "=")
		if _, shadowed := vars[k]; !shadowed {
			env = append(env, kv)
		}
	}
	for _, v := range p.required {
		env = append(env, v+"="+vars[v])
	}
	for _, o := range p.optional {
		env = append(env, o.name+"="+vars[o.name])
	}
	timeout := p.timeout
	if timeout <= 0 {
		timeout = r.opts.DefaultTimeout
	}
	// Secret-looking values of the node, given to the command or not, and
	// defaults the platform gives, are scrubbed with the runner's own.
	scrub := r.scrub
	if own := append(secretValues(nil, n.vars), secretValues(nil, vars)...); len(own) > 0 {
		scrub = newScrubber(append(own, r.secrets...))
	}
	return &job{res: res, plat: p, script: script, env: env, timeout: timeout, scrub: scrub}, handler.Result{}
}

// execute runs one job, or reports it not run when ctx has already ended.
func (r *Runner) execute(ctx context.Context, j *job) handler.Result {
	res := j.res
	res.Start = time.Now()
	if ctx.Err() != nil {
		res.TimedOut = true
		res.State = failedState(res.Action)
		res.Error = "not run: " + ctxReason(ctx)
		return res
	}

	out := r.command(ctx, j)
	res.Duration = time.Since(res.Start)
	res.Ran = out.started
	// Output is scrubbed of secret values here, before anything (the
	// error below, the audit log, the answer) is made from it.
	res.Stdout, res.StdoutTruncated = j.scrub.text(out.stdout.text(), out.stdout.truncated), out.stdout.truncated
	res.Stderr, res.StderrTruncated = j.scrub.text(out.stderr.text(), out.stderr.truncated), out.stderr.truncated
	log := r.log.With("node", res.Node, "platform", res.Platform, "action", string(res.Action))

	switch {
	case out.startErr != nil:
		res.State = failedState(res.Action)
		res.Error = "could not start: " + out.startErr.Error()
		log.Error("command did not start", "err", out.startErr)
	case out.timedOut != "":
		res.TimedOut = true
		res.State = failedState(res.Action)
		res.Error = out.timedOut
		log.Warn("command timed out", "reason", out.timedOut, "duration", res.Duration)
	case out.signal != 0:
		res.State = failedState(res.Action)
		res.Error = fmt.Sprintf("killed by signal %d (%s)", int(out.signal), out.signal)
		log.Warn("command killed by a signal", "signal", int(out.signal), "duration", res.Duration)
	default:
		res.ExitCode = out.exit
		res.State, res.Success, res.Running = j.plat.state(res.Action, out.exit)
		if !res.Success {
			res.Error = exitReason(out.exit, res.Stderr, res.Stdout)
		}
		log.Debug("command finished", "exit", out.exit, "state", res.State, "duration", res.Duration)
	}
	res.Error = j.scrub.text(res.Error, false)
	return res
}

// state maps an exit code of a command that exited on its own to the
// result's state. This is the one place that knows what exit codes mean.
//
// A transitional state (starting, stopping) was determined, so it is a
// success, and running keeps the settled state the node is leaving until
// the move completes: a script that waits for running=true after power on,
// or false after power off, never goes on early.
func (p *platform) state(action handler.Action, exit int) (state string, success bool, running *bool) {
	if action == handler.ActionStatus {
		switch exit {
		case 0:
			return handler.StateOn, true, boolPtr(true)
		case p.offCode:
			return handler.StateOff, true, boolPtr(false)
		}
		switch s := p.transitional[exit]; s {
		case handler.StateStarting:
			return s, true, boolPtr(false)
		case handler.StateStopping:
			return s, true, boolPtr(true)
		}
		return handler.StateUnknown, false, nil
	}
	if exit == 0 {
		return handler.StateOK, true, nil
	}
	return handler.StateFailed, false, nil
}

// failedState is the state of a command that did not run or did not exit on
// its own.
func failedState(action handler.Action) string {
	if action == handler.ActionStatus {
		return handler.StateUnknown
	}
	return handler.StateFailed
}

func boolPtr(b bool) *bool { return &b }

func ctxReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "request deadline reached"
	}
	return "request canceled"
}

// exitReason is "exit N: <last non-empty line of stderr>", falling back to
// stdout when stderr is empty.
func exitReason(exit int, stderr, stdout string) string {
	line := lastLine(stderr)
	if line == "" {
		line = lastLine(stdout)
	}
	if line == "" {
		return fmt.Sprintf("exit %d", exit)
	}
	return fmt.Sprintf("exit %d: %s", exit, line)
}

func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return truncateUTF8(l, errorMax)
		}
	}
	return ""
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// outcome is what became of one started (or not started) shell.
type outcome struct {
	started  bool
	startErr error
	exit     int            // exit status when the shell exited on its own
	signal   syscall.Signal // the signal that killed the shell, if any
	timedOut string         // why the deadline killed it, "" if it did not
	stdout   capture
	stderr   capture
}

// command runs j's script in its own process group and waits for it. At the
// deadline (ctx's or the platform's timeout, whichever is first) the group
// gets SIGTERM, then SIGKILL killGrace later. When the shell exits, whatever
// is left of its group is killed too, and output still held open by a
// process that left the group is abandoned after drainGrace.
func (r *Runner) command(ctx context.Context, j *job) (out outcome) {
	outR, outW, err := os.Pipe()
	if err != nil {
		out.startErr = err
		return out
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		out.startErr = err
		return out
	}
	defer outR.Close()
	defer errR.Close()

	// Stdin stays nil: os/exec connects it to /dev/null. Giving the pipes
	// as *os.File hands them to the child directly, without copy goroutines,
	// so this function alone decides how long to wait for them.
	cmd := exec.Command(r.opts.Shell, "-c", j.script)
	cmd.Env = j.env
	cmd.Dir = r.opts.ScriptsDir
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		out.startErr = err
		return out
	}
	out.started = true

	limit := r.opts.OutputCap
	var readers sync.WaitGroup
	readers.Go(func() { out.stdout.readFrom(outR, limit) })
	readers.Go(func() { out.stderr.readFrom(errR, limit) })

	// The shell leads its group, so its pid is the group id. Signals go to
	// the group only while the shell is unreaped: until then the id cannot
	// be reused by an unrelated group.
	pgid := cmd.Process.Pid
	var (
		mu        sync.Mutex
		reaped    bool
		killTimer *time.Timer
		timedOut  string
	)
	signalGroup := func(sig syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if !reaped {
			_ = syscall.Kill(-pgid, sig)
		}
	}
	cmdCtx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	stopDeadline := context.AfterFunc(cmdCtx, func() {
		mu.Lock()
		defer mu.Unlock()
		if reaped {
			return
		}
		if ctx.Err() != nil {
			timedOut = "timed out: " + ctxReason(ctx)
		} else {
			timedOut = fmt.Sprintf("timed out after %s", j.timeout)
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		killTimer = time.AfterFunc(killGrace, func() { signalGroup(syscall.SIGKILL) })
	})

	var waitErr error
	if waitExited(pgid) == nil {
		// The shell has exited but is not reaped: kill its leftovers while
		// the group id is still certainly ours.
		mu.Lock()
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		reaped = true
		mu.Unlock()
		waitErr = cmd.Wait()
	} else {
		// No waitid(WNOWAIT) here: reap first, then kill leftovers on a
		// best-effort basis.
		waitErr = cmd.Wait()
		mu.Lock()
		reaped = true
		mu.Unlock()
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	stopDeadline()
	mu.Lock()
	if killTimer != nil {
		killTimer.Stop()
	}
	out.timedOut = timedOut
	mu.Unlock()

	deadline := time.Now().Add(drainGrace)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	readers.Wait()

	out.exit = -1
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		out.startErr = fmt.Errorf("wait: %w", waitErr)
		return out
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			out.exit = ws.ExitStatus()
		case ws.Signaled():
			out.signal = ws.Signal()
		}
	} else {
		out.exit = cmd.ProcessState.ExitCode()
	}
	return out
}

// dedupEnv keeps the last entry for each name, in the position of the first.
func dedupEnv(env []string) []string {
	idx := make(map[string]int, len(env))
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if i, seen := idx[k]; seen {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// scratch buffers for reading output; what exceeds the cap is read into one
// and dropped.
var scratch = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// capture keeps the first bytes of a stream up to a limit and reads the rest
// to nowhere, so the writer never blocks on a full pipe.
type capture struct {
	buf       []byte
	truncated bool
}

func (c *capture) readFrom(f *os.File, limit int) {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	b := *bp
	for {
		n, err := f.Read(b)
		if n > 0 {
			keep := min(n, limit-len(c.buf))
			if keep < n {
				c.truncated = true
			}
			c.buf = append(c.buf, b[:keep]...)
		}
		if err != nil {
			return
		}
	}
}

// text is the captured output; when it was cut, a character split by the
// cut is dropped.
func (c *capture) text() string {
	b := c.buf
	if c.truncated {
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	return string(b)
}
