package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// Rigs that run the shipped default topology's platforms against something
// real: OpenIPMI's ipmi_sim BMCs for ipmi, Debian's aws CLI against an EC2
// Query-API fake for aws, and a recording az stub for azure. Each tool that
// is missing fails the test with the way to install it.

// requireTool fails the test unless path is an executable file.
func requireTool(tb testing.TB, path, pkg string) {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		tb.Fatalf("%s not found (Debian package %s): run `make deps` (make test does)", path, pkg)
	}
}

// shippedPlatforms is the platforms section of the embedded default
// topology, exactly as init writes it.
func shippedPlatforms(tb testing.TB) string {
	tb.Helper()
	i := bytes.Index(defaultTopology, []byte("\nplatforms:\n"))
	if i < 0 {
		tb.Fatal("default topology has no platforms section")
	}
	return string(defaultTopology[i+1:])
}

// toolDir copies testdata scripts into a fresh folder as executables, for
// the front of a server's PATH (a checkout may have lost their mode bits).
func toolDir(tb testing.TB, scripts ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, src := range scripts {
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		writeFile(tb, filepath.Join(dir, filepath.Base(src)), string(b), 0o755)
	}
	return dir
}

// pathWith is a PATH with dir first.
func pathWith(dir string) string {
	return "PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// ---- IPMI: ipmi_sim BMCs ----

// bmc is one simulated BMC: an ipmi_sim on its own loopback UDP port whose
// chassis keeps the power state ("0" or "1") in a file, and logs every
// chassis set to that file plus ".log".
type bmc struct {
	name  string
	port  int
	state string
	cmd   *exec.Cmd
	done  chan struct{}
}

var (
	udpPortsMu sync.Mutex
	udpPorts   = map[int]bool{} // handed out in this test process
)

// freeUDPPort finds a loopback UDP port nothing listens on, never the same
// twice in one test process: a second ipmi_sim on a port would silently
// share it.
func freeUDPPort(tb testing.TB) int {
	tb.Helper()
	udpPortsMu.Lock()
	defer udpPortsMu.Unlock()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if !udpPorts[port] {
			udpPorts[port] = true
			return port
		}
	}
	tb.Fatal("no free UDP port")
	return 0
}

// startBMCs starts n BMCs named bmc01.. that accept user with password,
// each powered as on[i] says, and stops them all, in parallel, when the
// test ends.
func startBMCs(tb testing.TB, user, password string, on []bool) []*bmc {
	tb.Helper()
	requireTool(tb, "/usr/bin/ipmi_sim", "openipmi")
	chassis, err := filepath.Abs("testdata/ipmi/chassis.sh")
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cmds := filepath.Join(dir, "bmc.cmds")
	writeFile(tb, cmds, "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n", 0o644)
	bmcs := make([]*bmc, len(on))
	tb.Cleanup(func() {
		var wg sync.WaitGroup
		for _, b := range bmcs {
			if b != nil {
				wg.Go(func() { b.stop(tb) })
			}
		}
		wg.Wait()
	})
	for i, power := range on {
		b := &bmc{name: fmt.Sprintf("bmc%02d", i+1), port: freeUDPPort(tb), done: make(chan struct{})}
		b.state = filepath.Join(dir, b.name+".power")
		writeFile(tb, b.state, map[bool]string{false: "0\n", true: "1\n"}[power], 0o644)
		lan := filepath.Join(dir, b.name+".lan.conf")
		writeFile(tb, lan, fmt.Sprintf(`name "%s"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    guid %032x
  endlan
  chassis_control "/bin/sh %s %s"
  user 2 true "%s" "%s" admin 10 none md2 md5 straight
`, b.name, b.port, 0xf1a9000+i, chassis, b.state, user, password), 0o600)
		private := filepath.Join(dir, b.name+".state")
		if err := os.Mkdir(private, 0o700); err != nil {
			tb.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, b.name+".sim.log"))
		if err != nil {
			tb.Fatal(err)
		}
		b.cmd = exec.Command("/usr/bin/ipmi_sim", "-n", "-c", lan, "-f", cmds, "-s", private)
		b.cmd.Stdout, b.cmd.Stderr = logf, logf
		if err := b.cmd.Start(); err != nil {
			tb.Fatalf("start ipmi_sim: %v", err)
		}
		logf.Close()
		go func() { _ = b.cmd.Wait(); close(b.done) }()
		bmcs[i] = b
	}
	for _, b := range bmcs {
		b.waitListening(tb)
	}
	return bmcs
}

// waitListening waits until the BMC's UDP port is bound.
func (b *bmc) waitListening(tb testing.TB) {
	tb.Helper()
	want := fmt.Sprintf(" 0100007F:%04X ", b.port)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case <-b.done:
			tb.Fatalf("%s: ipmi_sim exited at start: %v", b.name, b.cmd.ProcessState)
		default:
		}
		udp, _ := os.ReadFile("/proc/net/udp")
		if bytes.Contains(udp, []byte(want)) {
			return
		}
	}
	tb.Fatalf("%s: ipmi_sim did not bind 127.0.0.1:%d within 5s", b.name, b.port)
}

// stop ends the BMC by its pid (SIGTERM takes ipmi_sim about 1.3 s) and
// waits for it to be gone.
func (b *bmc) stop(tb testing.TB) {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
		tb.Errorf("%s: ipmi_sim ignored SIGTERM for 5s", b.name)
	}
}

// power is the BMC's power state file: "0" or "1".
func (b *bmc) power(tb testing.TB) string {
	tb.Helper()
	s, err := os.ReadFile(b.state)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(s))
}

// sets lists the chassis sets the BMC received, e.g. ["power 1", "reset 1"].
func (b *bmc) sets() []string {
	s, _ := os.ReadFile(b.state + ".log")
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(s)), " ", "_"))
}

// ---- AWS: an EC2 Query-API fake for the real aws CLI ----

// EC2 instance state codes.
var ec2Codes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// ec2Call is one call the fake answered.
type ec2Call struct {
	Action, Instance, Region string
}

// ec2Fake answers DescribeInstances, StartInstances, StopInstances and
// RebootInstances as EC2 does: start and stop leave the instance pending or
// stopping until settle, unknown ids are InvalidInstanceID.NotFound, and
// moves from the wrong state are IncorrectInstanceState.
type ec2Fake struct {
	mu        sync.Mutex
	instances map[string]string // id -> state name
	calls     []ec2Call
	reboots   map[string]int
	key       string // the access key id requests must be signed with
}

var sigv4Scope = regexp.MustCompile(`Credential=([^/]+)/\d{8}/([^/]+)/ec2/aws4_request`)

func (f *ec2Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		f.fail(w, http.StatusBadRequest, "MalformedQueryString", "want a POSTed form")
		return
	}
	m := sigv4Scope.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != f.key {
		f.fail(w, http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		return
	}
	action, region := r.PostForm.Get("Action"), m[2]
	var ids []string
	for i := 1; r.PostForm.Has("InstanceId." + strconv.Itoa(i)); i++ {
		ids = append(ids, r.PostForm.Get("InstanceId."+strconv.Itoa(i)))
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.calls = append(f.calls, ec2Call{action, id, region})
	}
	for _, id := range ids {
		if _, ok := f.instances[id]; !ok {
			f.fail(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
	}

	var b strings.Builder
	item := func(id, prev, cur string) {
		fmt.Fprintf(&b, "<item><instanceId>%s</instanceId><currentState><code>%d</code><name>%s</name></currentState>"+
			"<previousState><code>%d</code><name>%s</name></previousState></item>", xmlText(id), ec2Codes[cur], cur, ec2Codes[prev], prev)
	}
	switch action {
	case "DescribeInstances":
		b.WriteString("<reservationSet>")
		for _, id := range ids {
			st := f.instances[id]
			fmt.Fprintf(&b, "<item><reservationId>r-%s</reservationId><ownerId>123456789012</ownerId><instancesSet><item>"+
				"<instanceId>%s</instanceId><instanceState><code>%d</code><name>%s</name></instanceState>"+
				"</item></instancesSet></item>", xmlText(strings.TrimPrefix(id, "i-")), xmlText(id), ec2Codes[st], st)
		}
		b.WriteString("</reservationSet>")
	case "StartInstances", "StopInstances":
		moves := map[string]map[string]string{ // from -> to
			"StartInstances": {"stopped": "pending", "pending": "pending", "running": "running"},
			"StopInstances":  {"running": "stopping", "stopping": "stopping", "stopped": "stopped"},
		}[action]
		verb := map[string]string{"StartInstances": "started", "StopInstances": "stopped"}[action]
		for _, id := range ids {
			if _, ok := moves[f.instances[id]]; !ok {
				f.fail(w, http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in a state from which it can be %s.", id, verb))
				return
			}
		}
		b.WriteString("<instancesSet>")
		for _, id := range ids {
			prev := f.instances[id]
			f.instances[id] = moves[prev]
			item(id, prev, f.instances[id])
		}
		b.WriteString("</instancesSet>")
	case "RebootInstances":
		for _, id := range ids {
			if f.instances[id] != "running" {
				f.fail(w, http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in a state from which it can be rebooted.", id))
				return
			}
		}
		for _, id := range ids {
			f.reboots[id]++
		}
		b.WriteString("<return>true</return>")
	default:
		f.fail(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fake-%d</requestId>%s</%sResponse>`,
		action, len(f.calls), b.String(), action)
}

func (f *ec2Fake) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake-error</RequestID></Response>`,
		xmlText(code), xmlText(msg))
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// settle finishes every move in progress, as EC2 does after a while.
func (f *ec2Fake) settle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, st := range f.instances {
		switch st {
		case "pending":
			f.instances[id] = "running"
		case "stopping":
			f.instances[id] = "stopped"
		}
	}
}

func (f *ec2Fake) state(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.instances[id]
}

func (f *ec2Fake) rebootCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reboots[id]
}

// takeCalls returns the calls since the last take, sorted.
func (f *ec2Fake) takeCalls() []ec2Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	slices.SortFunc(out, func(a, b ec2Call) int { return strings.Compare(a.Action+a.Instance, b.Action+b.Instance) })
	return out
}

// ---- Azure: a recording az stub ----

// azStub is the state folder of testdata/azbin/az.
type azStub struct {
	dir string
}

func newAzStub(tb testing.TB, vms map[[2]string]string) *azStub {
	tb.Helper()
	a := &azStub{dir: tb.TempDir()}
	if err := os.Mkdir(filepath.Join(a.dir, "calls"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for k, state := range vms {
		a.set(tb, k[0], k[1], state)
	}
	return a
}

func (a *azStub) set(tb testing.TB, rg, name, state string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(a.dir, "vms", rg), 0o755); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(a.dir, "vms", rg, name), state+"\n", 0o644)
}

func (a *azStub) state(tb testing.TB, rg, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(a.dir, "vms", rg, name))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// settle finishes every move in progress, as Azure does after a while.
func (a *azStub) settle(tb testing.TB) {
	tb.Helper()
	final := map[string]string{"PowerState/starting": "PowerState/running", "PowerState/stopping": "PowerState/stopped", "PowerState/deallocating": "PowerState/deallocated"}
	files, _ := filepath.Glob(filepath.Join(a.dir, "vms", "*", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if to, ok := final[strings.TrimSpace(string(b))]; ok {
			writeFile(tb, f, to+"\n", 0o644)
		}
	}
}

// takeCalls returns the argv of every az call since the last take, each
// joined with spaces, sorted.
func (a *azStub) takeCalls(tb testing.TB) []string {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(a.dir, "calls", "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, strings.Join(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), " "))
		os.Remove(f)
	}
	slices.Sort(out)
	return out
}

// ---- checks shared by the platform tests ----

// argvWatch scans every process's command line (/proc/*/cmdline) until
// stopped, for secrets that must never be there, and counts the command
// lines that contain each of seen, to prove it looked while they ran.
type argvWatch struct {
	secrets, want []string
	stopc, done   chan struct{}
	stop          func()
	leaks         []string
	seen          map[string]int
}

func watchArgv(tb testing.TB, secrets []string, want ...string) *argvWatch {
	w := &argvWatch{secrets: secrets, want: want, stopc: make(chan struct{}), done: make(chan struct{}), seen: map[string]int{}}
	w.stop = sync.OnceFunc(func() { close(w.stopc); <-w.done })
	tb.Cleanup(w.stop)
	go func() {
		defer close(w.done)
		counted := map[string]bool{} // pid+cmdline already counted
		for {
			select {
			case <-w.stopc:
				return
			default:
			}
			procs, _ := os.ReadDir("/proc")
			for _, p := range procs {
				if p.Name()[0] < '0' || p.Name()[0] > '9' {
					continue
				}
				b, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
				if err != nil || len(b) == 0 {
					continue
				}
				line := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
				for _, s := range w.secrets {
					if strings.Contains(line, s) {
						w.leaks = append(w.leaks, line)
					}
				}
				if counted[p.Name()+line] {
					continue
				}
				counted[p.Name()+line] = true
				for _, s := range w.want {
					if strings.Contains(line, s) {
						w.seen[s]++
					}
				}
			}
			// ipmitool lives about 50 ms, the aws CLI about a second.
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return w
}

// check stops the watch and fails on any secret in a command line, or when
// it never saw the commands it was meant to watch.
func (w *argvWatch) check(tb testing.TB) {
	tb.Helper()
	w.stop()
	for _, l := range w.leaks {
		tb.Errorf("a secret is in a process's argv: %q", l)
	}
	for _, s := range w.want {
		if w.seen[s] == 0 {
			tb.Errorf("argv watch never saw a command line containing %q: it cannot have checked them", s)
		} else {
			tb.Logf("argv watch: %d command lines with %q, %d with a secret", w.seen[s], s, len(w.leaks))
		}
	}
}

// noSecretsAtRest fails when a secret is in an API answer or anywhere in
// the audit database files (main, WAL, shared memory).
func noSecretsAtRest(tb testing.TB, s *server, answers [][]byte, secrets ...string) {
	tb.Helper()
	files, _ := filepath.Glob(s.db + "*")
	if len(files) == 0 {
		tb.Fatalf("no audit db files at %s", s.db)
	}
	for _, sec := range secrets {
		for i, a := range answers {
			if bytes.Contains(a, []byte(sec)) {
				tb.Errorf("API answer %d holds secret %q: %s", i, sec, a)
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			if bytes.Contains(b, []byte(sec)) {
				tb.Errorf("audit file %s holds secret %q unredacted", filepath.Base(f), sec)
			}
		}
	}
}

// outcome is what one node's result must be, in the answer and in the
// audit log.
type outcome struct {
	state   string
	exit    int    // -1: null (did not exit on its own)
	running string // status only: "true", "false" or "null"
	err     string // a substring of the error; "" when there must be none
}

// succeeded reports whether state is one that counts as success.
func succeeded(state string) bool {
	switch state {
	case handler.StateOn, handler.StateOff, handler.StateOK, handler.StateStarting, handler.StateStopping:
		return true
	}
	return false
}

// act sends one action request and checks every node's result against
// want, in the answer and in the audit rows of its X-Request-Id. It
// returns the results by node and the raw answer.
func act(tb testing.TB, s *server, token, method, query string, want map[string]outcome) (map[string]handler.CommandAttributes, []byte) {
	tb.Helper()
	r := s.do(method, "/?"+query, token)
	if r.status != http.StatusOK {
		tb.Fatalf("%s ?%s: got %d %s, want 200", method, query, r.status, r.body)
	}
	got := map[string]handler.CommandAttributes{}
	for _, d := range r.commands(tb) {
		got[d.ID] = d.Attributes
	}
	if len(got) != len(want) {
		tb.Errorf("%s ?%s: got results for %v, want %d nodes", method, query, slices.Sorted(maps.Keys(got)), len(want))
	}
	id := r.header.Get("X-Request-Id")
	rows := map[string][]string{}
	for _, row := range sql(tb, s.db, "SELECT node, ifnull(exit_code, 'null'), state, success, ifnull(error, '') FROM results WHERE request_id = '"+id+"'") {
		f := strings.SplitN(row, "|", 5)
		rows[f[0]] = f[1:]
	}
	for node, w := range want {
		a, ok := got[node]
		if !ok {
			tb.Errorf("%s ?%s: %s: no result", method, query, node)
			continue
		}
		exit := "null"
		if a.ExitCode != nil {
			exit = strconv.Itoa(*a.ExitCode)
		}
		running, _ := json.Marshal(a.Running)
		if !a.Running.Set {
			running = nil
		}
		switch {
		case a.State != w.state, exit != strconv.Itoa(w.exit) && !(w.exit < 0 && exit == "null"),
			a.Success != succeeded(w.state), string(running) != w.running,
			w.err == "" && a.Error != "", w.err != "" && !strings.Contains(a.Error, w.err):
			tb.Errorf("%s ?%s: %s: got state %q exit %s success %v running %s error %q,\n\twant state %q exit %d success %v running %s error containing %q",
				method, query, node, a.State, exit, a.Success, running, a.Error, w.state, w.exit, succeeded(w.state), w.running, w.err)
		}
		row, ok := rows[node]
		if !ok {
			tb.Errorf("%s ?%s: %s: no audit row for request %s", method, query, node, id)
			continue
		}
		if wantRow := []string{exit, a.State, map[bool]string{false: "0", true: "1"}[a.Success], a.Error}; !slices.Equal(row, wantRow) {
			tb.Errorf("%s ?%s: %s: audit row got %q, want %q (as answered)", method, query, node, row, wantRow)
		}
	}
	if len(rows) != len(want) {
		tb.Errorf("%s ?%s: got %d audit rows, want %d", method, query, len(rows), len(want))
	}
	return got, r.body
}
