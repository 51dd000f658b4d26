package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openflighthpc/flight-power/handler"
)

// benchSecret signs the suite's tokens; the servers are on loopback and
// live for one benchmark.
const benchSecret = "flight-power-bench-secret-0123456789abcdef"

// node is one static node of a generated topology: its key/values.
type node map[string]string

// shippedPlatform reads one platform from a topology the project ships
// (cmd/local/etc), so the bench runs the commands users get.
func shippedPlatform(path, name string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t struct {
		Platforms map[string]any `yaml:"platforms"`
	}
	if err := yaml.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, ok := t.Platforms[name]
	if !ok {
		return nil, fmt.Errorf("%s has no platform %q", path, name)
	}
	return p, nil
}

// writeTopology writes a topology file with nodes and platforms.
func writeTopology(path string, nodes map[string]node, platforms map[string]any) error {
	b, err := yaml.Marshal(map[string]any{"static_nodes": nodes, "platforms": platforms})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// serverProc is a running flight-power-server.
type serverProc struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	done chan error
	log  *tail
	once sync.Once
}

// startServer runs the built server in dir with the topology at
// dir/topology.yaml, the audit log at dir/audit.db, commands in dir, and
// conf lines extra, and waits until it listens on a free loopback port.
func (s *suite) startServer(ctx context.Context, dir string, extra ...string) (*serverProc, error) {
	conf := filepath.Join(dir, "power-server.conf")
	lines := append([]string{
		"jwt_shared_secret='" + benchSecret + "'",
		"topology_config=topology.yaml",
		"audit_db=audit.db",
		"scripts_dir=.",
		"listen=127.0.0.1:0",
		"shutdown_grace=5s",
	}, extra...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(s.server)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", conf)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, dir: dir, done: make(chan error, 1), log: &tail{}}
	addr := make(chan string, 1)
	// The log is read to the end, as journald would, so the server never
	// blocks on it; the last lines are kept for error messages.
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			l := sc.Text()
			p.log.add(l)
			if !sent && strings.Contains(l, "listening") {
				if m := addrRE.FindStringSubmatch(l); m != nil {
					addr <- m[1]
					sent = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		p.url = "http://" + a
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("server exited before listening: %v: %s", err, p.log.String())
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, fmt.Errorf("server did not listen within 20 s: %s", p.log.String())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

var addrRE = regexp.MustCompile(`addr=(\S+)`)

// stop sends SIGTERM and waits for the exit; SIGKILL after 15 s. Calls
// after the first do nothing.
func (p *serverProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// peakRSS is the server's VmHWM in bytes: the most resident memory it has
// had since it started.
func (p *serverProc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("odd VmHWM line %q", l)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// cpu is the CPU time the server has used, its own and its reaped
// children's (the commands it ran), from /proc/PID/stat.
func (p *serverProc) cpu() (self, children time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name, which is in parentheses: utime, stime,
	// cutime and cstime are the 14th to 17th fields of the whole line.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("short /proc/PID/stat: %q", b)
	}
	var t [4]int64
	for k := range t {
		if t[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, err
		}
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(t[0]+t[1]) * tick, time.Duration(t[2]+t[3]) * tick, nil
}

// token mints a token the bench servers accept.
func token(role string) (string, error) {
	return handler.MintToken([]byte(benchSecret), "bench", role, 24*time.Hour, time.Now())
}

var client = &http.Client{Timeout: 120 * time.Second}

// get sends GET pathQuery with tok and returns the body of a 200.
func get(ctx context.Context, baseURL, pathQuery, tok string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+pathQuery, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", pathQuery, resp.Status, oneLine(string(body)))
	}
	return body, nil
}

// timedStatus asks for the status of nodes and times the whole exchange.
// It fails unless every node answered with state want.
func timedStatus(ctx context.Context, baseURL, nodes, tok string, count int, want string) (time.Duration, error) {
	t0 := time.Now()
	body, err := get(ctx, baseURL, "/?nodes="+nodes, tok)
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	var doc handler.Document[handler.CommandAttributes]
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, fmt.Errorf("decode answer: %w", err)
	}
	if len(doc.Data) != count {
		return 0, fmt.Errorf("answer has %d nodes, want %d", len(doc.Data), count)
	}
	for _, d := range doc.Data {
		if a := d.Attributes; !a.Success || a.State != want {
			return 0, fmt.Errorf("node %s: state %q success %v (%s), want %q", a.NodeName, a.State, a.Success, a.Error, want)
		}
	}
	return took, nil
}

// timeCommand runs cmd to completion and times it.
func timeCommand(cmd *exec.Cmd) (time.Duration, error) {
	var stderr strings.Builder
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, oneLine(stderr.String()))
	}
	return took, nil
}

// tail keeps the last lines written to it.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}
