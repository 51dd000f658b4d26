package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

// Secrets and hostile topology values through the built server over HTTP:
// what a command is given, what it prints, what the API answers, what the
// log says and what the audit database files hold, byte for byte.

// hostileValues are topology values that would run something, or arrive
// changed, if they were ever pasted into command text. canary is a folder
// in which a value that ran would create files.
func hostileValues(canary string) map[string]string {
	return map[string]string{
		"v_subst":    "$(touch " + filepath.Join(canary, "subst") + ")",
		"v_backtick": "`touch " + filepath.Join(canary, "backtick") + "`",
		"v_quotes":   `a "double" and 'single' quote, \" and \'`,
		"v_newlines": "line1\nline2\r\n\n",
		"v_unicode":  "é ✓ 日本語 \u00a0 🚀 \u202e",
		"v_meta":     "; touch " + filepath.Join(canary, "semicolon") + " | & > < * ? ~ # ! \\ ${HOME} $HOME %s %n",
		"v_spaces":   "  leading, inner\ttab and trailing  ",
		"v_dash":     "-n",
	}
}

// yamlString writes s as a YAML double-quoted scalar: JSON's string
// syntax is a subset of it.
func yamlString(tb testing.TB, s string) string {
	tb.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestHostileTopologyValuesArriveIntactOverHTTP(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	canary := t.TempDir()
	values := hostileValues(canary)
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	// Two nodes with different values: each must get its own.
	nodeValue := func(node, v string) string {
		return values[v] + map[string]string{"hostile01": "", "hostile02": "#2"}[node]
	}

	var b strings.Builder
	b.WriteString("static_nodes:\n")
	for _, node := range []string{"hostile01", "hostile02"} {
		fmt.Fprintf(&b, "  %s:\n    platform: dump\n", node)
		for _, v := range names {
			fmt.Fprintf(&b, "    %s: %s\n", v, yamlString(t, nodeValue(node, v)))
		}
	}
	fmt.Fprintf(&b, "platforms:\n  dump:\n    variables: [name, %s]\n    status: |-\n      mkdir -p \"out/$name\"\n", strings.Join(names, ", "))
	for _, v := range names {
		fmt.Fprintf(&b, "      printf %%s \"$%s\" > \"out/$name/%s\"\n", v, v)
	}
	s := newServerFiles(t, b.String(), "")
	s.start()

	r := s.do("GET", "/?nodes=hostile[01-02]", s.token("viewer"))
	if r.status != 200 {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	for _, d := range r.commands(t) {
		if d.Attributes.State != "on" {
			t.Fatalf("%s: state %q (%s), want on", d.ID, d.Attributes.State, d.Attributes.Error)
		}
	}
	id := r.header.Get("X-Request-Id")
	for _, node := range []string{"hostile01", "hostile02"} {
		for _, v := range names {
			want := nodeValue(node, v)
			got, err := os.ReadFile(filepath.Join(s.dir, "out", node, v))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("%s %s in the command's environment:\ngot  %q\nwant %q", node, v, got, want)
			}
			// and the audit log holds what the command was given
			q := fmt.Sprintf("SELECT hex(json_extract(variables, '$.%s')) FROM results WHERE request_id='%s' AND node='%s'", v, id, node)
			if got := sqlOne(t, s.db, q); got != strings.ToUpper(hex.EncodeToString([]byte(want))) {
				t.Errorf("%s %s in the audit log: got hex %s, want %q", node, v, got, want)
			}
		}
	}
	entries, err := os.ReadDir(canary)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a value was executed: it created %s", filepath.Join(canary, e.Name()))
	}
	// nor anywhere relative to the server
	for _, name := range []string{"subst", "backtick", "semicolon"} {
		if _, err := os.Stat(filepath.Join(s.dir, name)); err == nil {
			t.Errorf("a value was executed: it created %s", filepath.Join(s.dir, name))
		}
	}
	if bytes.Contains(s.do("GET", "/nodes", s.token("viewer")).body, []byte("line1")) {
		t.Errorf("GET /nodes shows variable values")
	}
}

// leakTopology's commands try every way a command has to show a secret:
// they dump their environment, print their secret-looking variable, and
// read the conf file and the server's own environment (which a command
// running as the server's user can). scripts_dir is the conf's folder.
const leakTopology = `static_nodes:
  leak01: {platform: leak, ipmi_password: hunter2-hunter2, bmc_user: admin}
  leak02: {platform: leak, ipmi_password: hunter2-hunter2, bmc_user: admin}
platforms:
  leak:
    variables: [name, ipmi_password, bmc_user]
    status: |-
      env > "env.$name"
      echo "pw=$ipmi_password"
      cat power-server.conf
      tr '\0' '\n' < /proc/$PPID/environ
    power_on: |-
      echo "login failed for $bmc_user with $ipmi_password" >&2
      exit 1
    power_off: |-
      tr '\0' '\n' < /proc/$PPID/environ >&2
      cat power-server.conf >&2
      echo "$ipmi_password" >&2
      exit 2
`

// The JWT secret never reaches a command's environment, a log line, an
// answer or the audit database files, whether the server reads it from the
// conf file (with systemd's EnvironmentFile copy of the conf in its
// environment too) or from FLIGHT_POWER_SERVER_JWT_SHARED_SECRET; and a
// secret-looking variable's value shows nowhere but in what its own
// command is given.
func TestSecretsNeverLeave(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	const password = "hunter2-hunter2"
	tests := []struct {
		name    string
		fromEnv bool
	}{
		{"secret in the conf and systemd's copy of it in the environment", false},
		{"secret in FLIGHT_POWER_SERVER_JWT_SHARED_SECRET", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServerFiles(t, leakTopology, "log_level=debug\nscripts_dir=.\n")
			if tt.fromEnv {
				conf := "topology_config=topology.yaml\naudit_db=audit.db\nlisten=127.0.0.1:0\nlog_level=debug\nscripts_dir=.\n"
				writeFile(t, s.conf, conf, 0o600)
				s.env = []string{envPrefix + "_JWT_SHARED_SECRET=" + e2eSecret}
			} else {
				// systemd's EnvironmentFile=power-server.conf: every key, lower
				// case, quotes removed; and a variable that merely holds it
				s.env = []string{
					"jwt_shared_secret=" + e2eSecret,
					"topology_config=topology.yaml",
					"log_level=debug",
					"SOME_COPY=prefix-" + e2eSecret + "-suffix",
				}
			}
			s.start()
			op := s.token("operator")

			var bodies [][]byte
			check := func(method, query string, wantState string) []handler.Resource[handler.CommandAttributes] {
				t.Helper()
				r := s.do(method, query, op)
				if r.status != 200 {
					t.Fatalf("%s %s: %d %s", method, query, r.status, r.body)
				}
				bodies = append(bodies, r.body)
				data := r.commands(t)
				for _, d := range data {
					if d.Attributes.State != wantState {
						t.Errorf("%s %s: %s state %q (%s), want %s", method, query, d.ID, d.Attributes.State, d.Attributes.Error, wantState)
					}
				}
				return data
			}
			check("GET", "/?nodes=leak[01-02]", "on")
			on := check("PATCH", "/?nodes=leak01", "failed")
			if got, want := on[0].Attributes.Error, "exit 1: login failed for admin with "+handler.Redacted; got != want {
				t.Errorf("power_on error: got %q, want %q", got, want)
			}
			off := check("DELETE", "/?nodes=leak02", "failed")
			if got, want := off[0].Attributes.Error, "exit 2: "+handler.Redacted; got != want {
				t.Errorf("power_off error: got %q, want %q", got, want)
			}
			bodies = append(bodies, s.do("GET", "/nodes", op).body, s.do("GET", "/groups", op).body)

			// what the command was given: its own variables, never the secret
			env, err := os.ReadFile(filepath.Join(s.dir, "env.leak01"))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(env, []byte(e2eSecret)) {
				t.Errorf("the command's environment holds the secret:\n%s", env)
			}
			for _, line := range strings.Split(string(env), "\n") {
				k, _, _ := strings.Cut(line, "=")
				if strings.HasPrefix(k, envPrefix) || k == "jwt_shared_secret" || k == "topology_config" {
					t.Errorf("the command's environment holds the server's configuration: %s", line)
				}
			}
			if !bytes.Contains(env, []byte("ipmi_password="+password+"\n")) {
				t.Errorf("the command's environment lacks its own ipmi_password:\n%s", env)
			}

			// the commands did print both secrets, and the audit log holds
			// them redacted
			wantStdout := "jwt_shared_secret='" + handler.Redacted + "'"
			if tt.fromEnv {
				wantStdout = envPrefix + "_JWT_SHARED_SECRET=" + handler.Redacted
			}
			db := s.db
			if got := sqlOne(t, db, "SELECT count(*) FROM results WHERE action='status' AND instr(stdout, 'pw="+handler.Redacted+"') > 0 AND instr(stdout, '"+strings.ReplaceAll(wantStdout, "'", "''")+"') > 0"); got != "2" {
				out := sql(t, db, "SELECT stdout FROM results WHERE action='status'")
				t.Errorf("status stdout with both secrets redacted: got %s rows, want 2:\n%s", got, strings.Join(out, "\n"))
			}
			if got := sqlOne(t, db, "SELECT json_extract(variables, '$.ipmi_password') FROM results WHERE action='power_on'"); got != handler.Redacted {
				t.Errorf("audited ipmi_password: got %q, want %q", got, handler.Redacted)
			}

			if err := s.stop(syscall.SIGTERM); err != nil {
				t.Errorf("stop: %v", err)
			}
			files, _ := filepath.Glob(s.db + "*")
			if len(files) == 0 {
				t.Fatalf("no audit database files at %s*", s.db)
			}
			where := map[string][]byte{"server log": []byte(s.stderr.String())}
			for i, b := range bodies {
				where[fmt.Sprintf("answer %d", i)] = b
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				where[filepath.Base(f)] = b
			}
			for what, b := range where {
				for _, secret := range []string{e2eSecret, password} {
					if bytes.Contains(b, []byte(secret)) {
						t.Errorf("%s holds the secret %q", what, secret)
					}
				}
			}
			if !strings.Contains(s.stderr.String(), "level=DEBUG") {
				t.Errorf("the server did not log at debug level, so the log proves little:\n%s", s.stderr.String())
			}
		})
	}
}

// A conf file others can read is served with a warning that says how to
// fix it; init writes it 0600 (TestConfAndSubcommands).
func TestConfReadableByOthersWarns(t *testing.T) {
	t.Parallel()
	s := newServerFiles(t, simTopology(t, 6, ""), "")
	if err := os.Chmod(s.conf, 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	want := fmt.Sprintf("%s is readable by others (mode 0644) and holds the JWT secret: chmod 600 %s", s.conf, s.conf)
	if log := s.stderr.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, want) {
		t.Errorf("log: want a warning %q, got:\n%s", want, log)
	}
	if r := s.do("GET", "/nodes", s.token("viewer")); r.status != 200 {
		t.Errorf("GET /nodes: %d %s", r.status, r.body)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("stop: %v", err)
	}

	// 0600 gives no such warning
	s = newServerFiles(t, simTopology(t, 6, ""), "")
	s.start()
	if strings.Contains(s.stderr.String(), "readable by others") {
		t.Errorf("a 0600 conf was warned about:\n%s", s.stderr.String())
	}
}
