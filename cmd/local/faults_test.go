package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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

// Faults, end to end through the real binary: commands that misbehave, an
// audit log on a full or read-only file system or locked by another
// process, and many requests at once. Nothing may be lost: every command
// that runs is answered and audited, and a request the audit log cannot
// take runs nothing.

// faultTopology is nodes node01..node<n> on platform "fault", whose four
// commands are all script, with the given timeout.
func faultTopology(n int, timeout, script string) string {
	var b strings.Builder
	b.WriteString("static_nodes:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  node%02d: {platform: fault}\n", i)
	}
	indented := "      " + strings.ReplaceAll(strings.TrimSpace(script), "\n", "\n      ")
	b.WriteString("platforms:\n  fault:\n    variables: [name]\n")
	for _, a := range []string{"power_on", "power_off", "restart", "status"} {
		fmt.Fprintf(&b, "    %s: |-\n%s\n", a, indented)
	}
	fmt.Fprintf(&b, "    timeout: %s\n", timeout)
	return b.String()
}

// procKB reads a "VmHWM"-style line, in kB, from /proc/PID/status.
func procKB(tb testing.TB, pid int, key string) int {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return atoi(tb, strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	tb.Fatalf("/proc/%d/status has no %s", pid, key)
	return 0
}

// gone reports whether pid has exited (a zombie waiting for its reaper
// counts: it runs nothing and holds no pipe).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// waitGone fails unless pid exits within d.
func waitGone(tb testing.TB, pid int, what string, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !gone(pid) {
		if time.Now().After(deadline) {
			tb.Errorf("%s (pid %d) still runs %v after its command ended", what, pid, d)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPid(tb testing.TB, path string) int {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return atoi(tb, strings.TrimSpace(string(b)))
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// timedDo is s.do with how long the answer took.
func (s *server) timedDo(method, pathQuery, token string) (reply, time.Duration) {
	s.tb.Helper()
	start := time.Now()
	r := s.do(method, pathQuery, token)
	return r, time.Since(start)
}

func TestGrandchildrenAreKilledWhenTheCommandExits(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	// One grandchild keeps the command's stdout open, one lets go of it;
	// both would write "late" to the marker if they lived.
	s := newServerFiles(t, faultTopology(2, "10s", `
sleep 30 & echo $! > "pid.$name.1"
(sleep 30; echo late >> marker) </dev/null >/dev/null 2>&1 & echo $! > "pid.$name.2"
echo started
exit 0`), "")
	s.start()
	r, took := s.timedDo("PATCH", "/?nodes=node[01-02]", s.token("operator"))
	t.Logf("command that leaves two grandchildren: answered in %v", took.Round(time.Millisecond))
	if r.status != 200 || took > 2*time.Second {
		t.Fatalf("got %d after %v, want 200 promptly: %s", r.status, took, r.body)
	}
	for _, d := range r.commands(t) {
		if !d.Attributes.Success || d.Attributes.TimedOut {
			t.Errorf("%s: %+v, want success", d.ID, d.Attributes)
		}
	}
	for _, node := range []string{"node01", "node02"} {
		for _, k := range []string{"1", "2"} {
			waitGone(t, readPid(t, filepath.Join(s.dir, "pid."+node+"."+k)), node+"'s grandchild "+k, 2*time.Second)
		}
	}
	if got := sqlOne(t, s.db, "SELECT count(*)||'|'||sum(success) FROM results"); got != "2|2" {
		t.Errorf("results rows count|successes got %s, want 2|2", got)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "marker")); err == nil {
		t.Errorf("a grandchild outlived its command and wrote the marker")
	}
}

func TestCommandIgnoringSIGTERMIsKilledAtDeadlinePlusGrace(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	// node01 traps SIGTERM and carries on; node02 ignores it outright.
	s := newServerFiles(t, faultTopology(2, "1s", `
echo $$ > "pid.$name"
case "$name" in
node01)
  trap 'echo "got TERM, carrying on" >&2' TERM
  while :; do sleep 0.05; done ;;
*)
  trap '' TERM
  sleep 30 ;;
esac`), "")
	s.start()
	r, took := s.timedDo("DELETE", "/?nodes=node[01-02]", s.token("operator"))
	t.Logf("commands ignoring SIGTERM with timeout 1s: answered in %v", took.Round(time.Millisecond))
	if r.status != 200 {
		t.Fatalf("got %d: %s", r.status, r.body)
	}
	// killed at 1 s + 250 ms grace; allow for a loaded machine
	if took < 1250*time.Millisecond || took > 3*time.Second {
		t.Errorf("answered after %v, want 1.25 s (deadline + SIGKILL grace)", took)
	}
	for _, d := range r.commands(t) {
		a := d.Attributes
		t.Logf("%s: duration-ms %d, timed-out %v, error %q", d.ID, a.DurationMS, a.TimedOut, a.Error)
		if !a.TimedOut || a.Success || a.ExitCode != nil || a.DurationMS < 1250 || !strings.Contains(a.Error, "timed out after 1s") {
			t.Errorf("%s: %+v, want timed out after 1s, killed (no exit code), after >= 1250 ms", d.ID, a)
		}
		waitGone(t, readPid(t, filepath.Join(s.dir, "pid."+d.ID)), d.ID+"'s command", 2*time.Second)
	}
	if got := sqlOne(t, s.db, "SELECT group_concat(node||':'||timed_out||':'||quote(exit_code)||':'||(duration_ms >= 1250), ',') FROM (SELECT * FROM results ORDER BY node)"); got != "node01:1:NULL:1,node02:1:NULL:1" {
		t.Errorf("audit results got %s, want both timed out, no exit code, >= 1250 ms", got)
	}
	// SIGTERM came first: the trap ran before SIGKILL.
	if got := sqlOne(t, s.db, "SELECT stderr LIKE '%got TERM, carrying on%' FROM results WHERE node='node01'"); got != "1" {
		t.Errorf("node01 stderr does not hold the SIGTERM trap's line")
	}
}

func TestHundredMegabytesOfOutputKeepTheServerSmall(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, faultTopology(3, "20s", `
yes "$name" | head -c 100000000
yes err | head -c 20000000 >&2`), "")
	s.start()
	before := procKB(t, s.pid(), "VmHWM")
	r, took := s.timedDo("GET", "/?nodes=node[01-03]", s.token("viewer"))
	after := procKB(t, s.pid(), "VmHWM")
	t.Logf("3 nodes x 120 MB of output: answered in %v; server VmHWM %d kB before, %d kB after", took.Round(time.Millisecond), before, after)
	if r.status != 200 || len(r.commands(t)) != 3 {
		t.Fatalf("got %d: %.300s", r.status, r.body)
	}
	// The runner keeps 64 KiB a stream and reads the rest to nowhere.
	if after > 100<<10 || after-before > 40<<10 {
		t.Errorf("server peak RSS %d kB (was %d kB): output was held in memory", after, before)
	}
	if got := sqlOne(t, s.db, "SELECT group_concat(stdout_truncated||stderr_truncated||':'||length(stdout)||':'||length(stderr), ',') FROM results"); got != "11:65536:65536,11:65536:65536,11:65536:65536" {
		t.Errorf("audit results truncated flags and lengths: got %s, want 11:65536:65536 for each node", got)
	}
}

func TestTenThousandNodesInOneRequest(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	const n = 10000
	var b strings.Builder
	b.WriteString("static_nodes:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  n%05d: {platform: fast}\n", i)
	}
	b.WriteString("platforms:\n  fast:\n    variables: [name]\n    power_on: exit 0\n    power_off: exit 0\n    restart: exit 0\n    status: exit 111\n")
	s := newServerFiles(t, b.String(), "")
	s.start()
	r, took := s.timedDo("GET", "/?nodes=n%5B00001-10000%5D", s.token("viewer"))
	t.Logf("%d nodes in one request: answered in %v (%.0f nodes/s), %d bytes; server VmHWM %d kB",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), len(r.body), procKB(t, s.pid(), "VmHWM"))
	if r.status != 200 {
		t.Fatalf("got %d: %.300s", r.status, r.body)
	}
	res := r.commands(t)
	if len(res) != n {
		t.Fatalf("got %d results, want %d", len(res), n)
	}
	for i, d := range res {
		if want := fmt.Sprintf("n%05d", i+1); d.ID != want || d.Attributes.State != "off" {
			t.Fatalf("result %d: %s %s (%s), want %s off", i, d.ID, d.Attributes.State, d.Attributes.Error, want)
		}
	}
	id := r.header.Get("X-Request-Id")
	if got := sqlOne(t, s.db, "SELECT count(*)||'|'||count(DISTINCT node)||'|'||sum(state='off') FROM results WHERE request_id='"+id+"'"); got != fmt.Sprintf("%d|%d|%d", n, n, n) {
		t.Errorf("audit results count|distinct|off got %s, want %d each", got, n)
	}
	if got := sqlOne(t, s.db, "SELECT status||'|'||state||'|'||node_count FROM requests WHERE id='"+id+"'"); got != fmt.Sprintf("200|done|%d", n) {
		t.Errorf("audit request got %s", got)
	}
}

// ---- the audit log's file system and lock ----

const mountHelp = "this test makes the fault real by mounting a file system: run it as root (as `make test` does in CI) or with passwordless sudo"

// asRoot runs a command as root: directly when the tests run as root,
// through sudo -n otherwise.
func asRoot(args ...string) ([]byte, error) {
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n"}, args...)
	}
	return exec.Command(args[0], args[1:]...).CombinedOutput()
}

// unmountAtCleanup unmounts dir when the test ends, after the server that
// uses it has been stopped (cleanups run last-registered first).
func unmountAtCleanup(tb testing.TB, dir string) {
	tb.Cleanup(func() {
		if out, err := asRoot("umount", dir); err != nil {
			tb.Logf("umount %s: %v %s; detaching it lazily", dir, err, out)
			_, _ = asRoot("umount", "-l", dir)
		}
	})
}

// mountTmpfs mounts a tmpfs of size, owned by the test's user.
func mountTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	opts := fmt.Sprintf("size=%s,mode=0700,uid=%d,gid=%d", size, os.Getuid(), os.Getgid())
	if out, err := asRoot("mount", "-t", "tmpfs", "-o", opts, "flight-power-test", dir); err != nil {
		tb.Fatalf("mount -t tmpfs: %v: %s\n%s", err, bytes.TrimSpace(out), mountHelp)
	}
	unmountAtCleanup(tb, dir)
	return dir
}

// mountExt4 loop-mounts a fresh 16 MiB ext4 with errors=remount-ro, owned
// by the test's user, and returns the folder and the device's name under
// /sys/fs/ext4.
func mountExt4(tb testing.TB) (dir, dev string) {
	tb.Helper()
	img := filepath.Join(tb.TempDir(), "ext4.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		tb.Fatalf("mkfs.ext4 (Debian package e2fsprogs): %v: %s", err, out)
	}
	dir = tb.TempDir()
	if out, err := asRoot("mount", "-o", "loop,errors=remount-ro", img, dir); err != nil {
		tb.Fatalf("mount -o loop: %v: %s\n%s", err, bytes.TrimSpace(out), mountHelp)
	}
	unmountAtCleanup(tb, dir)
	if out, err := asRoot("chown", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), dir); err != nil {
		tb.Fatalf("chown %s: %v: %s", dir, err, out)
	}
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", dir).Output()
	if err != nil {
		tb.Fatalf("findmnt %s: %v", dir, err)
	}
	return dir, filepath.Base(strings.TrimSpace(string(out)))
}

// fillUp writes a file in dir until the file system has no byte left.
func fillUp(tb testing.TB, dir string) {
	tb.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for n := len(buf); n > 0; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Bavail != 0 {
		tb.Fatalf("file system not full: %d blocks free (%v)", st.Bavail, err)
	}
}

// withAuditDB points s at an audit log in dir.
func withAuditDB(s *server, dir string) {
	s.db = filepath.Join(dir, "audit.db")
	f, err := os.OpenFile(s.conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "audit_db=%s\n", s.db); err != nil {
		s.tb.Fatal(err)
	}
}

// refusedAndLogged checks a 503 that ran nothing: its body says so, in
// words without SQLite's, and the server log keeps its request id, since
// the audit log could not.
func refusedAndLogged(tb testing.TB, s *server, what string, r reply) {
	tb.Helper()
	if r.status != 503 {
		tb.Errorf("%s: got %d, want 503: %s", what, r.status, r.body)
		return
	}
	if b := string(r.body); strings.Contains(b, "SQLITE") || strings.Contains(b, "locked") || strings.Contains(b, "disk") {
		tb.Errorf("%s: body %s shows SQLite's error to the user", what, b)
	}
	id := r.header.Get("X-Request-Id")
	deadline := time.Now().Add(2 * time.Second) // the log arrives through a pipe
	for id == "" || !strings.Contains(s.stderr.String(), "id="+id) {
		if time.Now().After(deadline) {
			tb.Errorf("%s: request id %q not in the server log", what, id)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(l, "id="+id) && strings.Contains(l, "err=") {
			_, cause, _ := strings.Cut(l, "err=")
			tb.Logf("%s: server log: %s", what, cause)
		}
	}
}

func TestAuditLogOnAFullFileSystem(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	dir := mountTmpfs(t, "4m")
	s := newServerFiles(t, markerTopology(3), "")
	withAuditDB(s, dir)
	s.start()
	op := s.token("operator")
	if r := s.do("PATCH", "/?nodes=node01", op); r.status != 200 {
		t.Fatalf("before the disk fills: %d %s", r.status, r.body)
	}

	fillUp(t, dir)
	on, took := s.timedDo("PATCH", "/?nodes=node02", op)
	t.Logf("power on with the audit disk full: %d in %v: %s", on.status, took.Round(time.Millisecond), bytes.TrimSpace(on.body))
	refusedAndLogged(t, s, "power on, disk full", on)
	list, _ := s.timedDo("GET", "/nodes", op)
	refusedAndLogged(t, s, "list, disk full", list)
	if r := s.do("GET", "/?nodes=node02", ""); r.status != 401 {
		t.Errorf("no token, disk full: got %d, want 401 (answered though not recorded)", r.status)
	}
	if got := markerLines(t, s); len(got) != 1 {
		t.Errorf("commands run: %q, want node01's first power on only", got)
	}
	if !strings.Contains(s.stderr.String(), "database or disk is full") {
		t.Errorf("server log does not say the disk is full:\n%s", s.stderr.String())
	}

	// Room again: the next request runs and is recorded, the file is sound.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	r := s.do("PATCH", "/?nodes=node02", op)
	if r.status != 200 {
		t.Fatalf("after freeing space: %d %s", r.status, r.body)
	}
	if got := markerLines(t, s); len(got) != 2 {
		t.Errorf("commands run: %q, want node01's and node02's power on", got)
	}
	if got := sqlOne(t, s.db, "SELECT group_concat(status, ',') FROM (SELECT status FROM requests ORDER BY time)"); got != "200,200" {
		t.Errorf("requests recorded: statuses %s, want 200,200", got)
	}
	if got := sqlOne(t, s.db, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check: %s", got)
	}
}

// The disk fills while commands run: they were begun in the audit log, so
// they finish and are answered, and the server log keeps each result the
// audit log could not. The request's row stays running until the next
// start marks it interrupted.
func TestDiskFillsMidRequest(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	dir := mountTmpfs(t, "4m")
	s := newServerFiles(t, faultTopology(3, "10s", `sleep 1; echo "$name" >> marker`), "")
	withAuditDB(s, dir)
	s.start()
	got := make(chan reply, 1)
	go func() { got <- s.do("PATCH", "/?nodes=node[01-03]", s.token("operator")) }()
	waitFor(t, 5*time.Second, func() bool {
		return sqlOne(t, s.db, "SELECT count(*) FROM requests WHERE state='running'") == "1"
	})
	fillUp(t, dir)
	r := <-got
	if r.status != 200 || len(r.commands(t)) != 3 {
		t.Fatalf("got %d: %s", r.status, r.body)
	}
	for _, d := range r.commands(t) {
		if !d.Attributes.Success {
			t.Errorf("%s: %+v", d.ID, d.Attributes)
		}
	}
	if got := sqlOne(t, s.db, "SELECT state||'|'||(SELECT count(*) FROM results) FROM requests"); got != "running|0" {
		t.Errorf("audit log after the disk filled: state|results got %s, want running|0", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, node := range []string{"node01", "node02", "node03"} {
		want := regexp.MustCompile(`msg="result not recorded in the audit log" .*node=` + node + ` .*action=power_on state=ok success=true exit_code=0 `)
		for !want.MatchString(s.stderr.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("server log has no line with %s's result:\n%s", node, s.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("stop: %v", err)
	}
	s.start()
	if got := sqlOne(t, s.db, "SELECT state FROM requests"); got != "interrupted" {
		t.Errorf("after a restart the unfinished row is %s, want interrupted", got)
	}
	if got := sqlOne(t, s.db, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check: %s", got)
	}
}

func TestAuditLogOnAFileSystemThatTurnsReadOnly(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	dir, dev := mountExt4(t)
	s := newServerFiles(t, markerTopology(3), "")
	withAuditDB(s, dir)
	s.start()
	op := s.token("operator")
	if r := s.do("PATCH", "/?nodes=node01", op); r.status != 200 {
		t.Fatalf("before the file system fails: %d %s", r.status, r.body)
	}

	// An ext4 error with errors=remount-ro: the kernel makes the file
	// system read-only under the open database, as it does on a failing disk.
	if out, err := asRoot("sh", "-c", "echo flight-power fault test > /sys/fs/ext4/"+dev+"/trigger_fs_error"); err != nil {
		t.Fatalf("trigger an ext4 error on %s: %v %s", dev, err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("file system still writable after the ext4 error: %v", err)
	}
	on, took := s.timedDo("PATCH", "/?nodes=node02", op)
	t.Logf("power on with the audit file system read-only: %d in %v", on.status, took.Round(time.Millisecond))
	refusedAndLogged(t, s, "power on, read-only", on)
	list, _ := s.timedDo("GET", "/nodes", op)
	refusedAndLogged(t, s, "list, read-only", list)
	if got := markerLines(t, s); len(got) != 1 {
		t.Errorf("commands run: %q, want node01's first power on only", got)
	}

	// A server started on it refuses to start, and says why.
	_ = s.stop(syscall.SIGTERM)
	out, err := exec.Command(serverBin, "serve", "--config", s.conf).CombinedOutput()
	t.Logf("start on the read-only file system: %v: %s", err, bytes.TrimSpace(out))
	if err == nil || !strings.Contains(string(out), s.db) || !strings.Contains(string(out), "read-only") {
		t.Errorf("start on a read-only audit log: got %v %s, want a refusal naming the file and why", err, out)
	}
	if got := sqlOne(t, s.db, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check: %s", got)
	}
}

// sqliteShellLock starts the real sqlite3 shell on db inside BEGIN
// IMMEDIATE, an admin's open transaction; release commits and ends it.
func sqliteShellLock(tb testing.TB, db string) (release func()) {
	tb.Helper()
	cmd := exec.Command("sqlite3", db)
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.WriteString(in, "BEGIN IMMEDIATE;\n.print locked\n"); err != nil {
		tb.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		tb.Fatalf("sqlite3 did not take the write lock: %q %v", line, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = io.WriteString(in, "COMMIT;\n")
			in.Close()
			_ = cmd.Wait()
		})
	}
	tb.Cleanup(release)
	return release
}

func TestAuditLogLockedBySQLiteShell(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, markerTopology(5), "")
	s.start()
	op := s.token("operator")
	release := sqliteShellLock(t, s.db)

	type call struct {
		what, method, path, token string
		want                      int
	}
	calls := []call{
		{"power on node01", "PATCH", "/?nodes=node01", op, 503},
		{"power off node02", "DELETE", "/?nodes=node02", op, 503},
		{"restart node03", "PUT", "/?nodes=node03", op, 503},
		{"status node04", "GET", "/?nodes=node04", op, 503},
		{"list", "GET", "/nodes", op, 503},
		{"no token", "GET", "/?nodes=node05", "", 401},
	}
	var wg sync.WaitGroup
	got := make([]reply, len(calls))
	took := make([]time.Duration, len(calls))
	for i, c := range calls {
		wg.Go(func() { got[i], took[i] = s.timedDo(c.method, c.path, c.token) })
	}
	wg.Wait()
	for i, c := range calls {
		t.Logf("%-16s while locked: %d after %v", c.what, got[i].status, took[i].Round(time.Millisecond))
		// busy_timeout is 5 s, for every request, however many wait
		if took[i] < 4*time.Second || took[i] > 7*time.Second {
			t.Errorf("%s: answered after %v, want about the 5 s busy timeout", c.what, took[i])
		}
		if c.want == 503 {
			refusedAndLogged(t, s, c.what, got[i])
		} else if got[i].status != c.want {
			t.Errorf("%s: got %d, want %d", c.what, got[i].status, c.want)
		}
	}
	if got := markerLines(t, s); len(got) != 0 {
		t.Errorf("commands ran while the audit log was locked: %q", got)
	}

	release()
	r := s.do("PATCH", "/?nodes=node01", op)
	if r.status != 200 || len(markerLines(t, s)) != 1 {
		t.Fatalf("after the lock was released: %d %s", r.status, r.body)
	}
	if got := sqlOne(t, s.db, "SELECT count(*)||'|'||group_concat(status) FROM requests"); got != "1|200" {
		t.Errorf("requests rows: got %s, want only the request after the lock", got)
	}
}

func TestFiftyConcurrentRequestsOnOverlappingNodes(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, markerTopology(30), "")
	s.start()
	op := s.token("operator")
	methods := []string{"GET", "PATCH", "DELETE", "PUT"}
	const n = 50
	replies := make([]reply, n)
	var wg sync.WaitGroup
	startLine := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-startLine
			first := i%10 + 1
			req, err := http.NewRequest(methods[i%4], fmt.Sprintf("%s/?nodes=node[%02d-%02d]", s.url, first, first+19), nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+op)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			replies[i] = reply{resp.StatusCode, resp.Header, body}
		})
	}
	start := time.Now()
	close(startLine)
	wg.Wait()
	t.Logf("%d concurrent requests of 20 overlapping nodes: all answered in %v", n, time.Since(start).Round(time.Millisecond))
	for i, r := range replies {
		first := i%10 + 1
		if r.status != 200 {
			t.Errorf("request %d: %d %s", i, r.status, r.body)
			continue
		}
		var doc handler.Document[handler.CommandAttributes]
		if err := json.Unmarshal(r.body, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Data) != 20 {
			t.Errorf("request %d: %d results, want 20", i, len(doc.Data))
			continue
		}
		for k, d := range doc.Data {
			if want := fmt.Sprintf("node%02d", first+k); d.ID != want || !d.Attributes.Success {
				t.Errorf("request %d result %d: %s %+v, want %s succeeded", i, k, d.ID, d.Attributes, want)
			}
		}
		id := r.header.Get("X-Request-Id")
		if got := sqlOne(t, s.db, "SELECT status||'|'||state||'|'||node_count||'|'||(SELECT count(DISTINCT node)||'|'||count(*) FROM results WHERE request_id=requests.id) FROM requests WHERE id='"+id+"'"); got != "200|done|20|20|20" {
			t.Errorf("request %d audit: got %s, want 200|done|20|20|20", i, got)
		}
	}
	if got := sqlOne(t, s.db, "SELECT count(*)||'|'||(SELECT count(*) FROM results) FROM requests"); got != fmt.Sprintf("%d|%d", n, n*20) {
		t.Errorf("rows requests|results got %s, want %d|%d", got, n, n*20)
	}
	if got := len(markerLines(t, s)); got != n*20 {
		t.Errorf("commands run: %d, want %d", got, n*20)
	}
	if log := s.stderr.String(); strings.Contains(log, "level=ERROR") || strings.Contains(log, "locked") || strings.Contains(log, "BUSY") {
		t.Errorf("server log has errors:\n%s", log)
	}
}
