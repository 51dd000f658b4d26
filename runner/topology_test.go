package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// load parses src and fails the test on any error.
func load(tb testing.TB, src string) *Topology {
	tb.Helper()
	topo, err := Load(strings.NewReader(src))
	if err != nil {
		tb.Fatalf("Load: got error %v, want none", err)
	}
	return topo
}

// loadProblems parses src and returns the problems it must report.
func loadProblems(tb testing.TB, src string) []Problem {
	tb.Helper()
	_, err := Load(strings.NewReader(src))
	var te *TopologyError
	if !errors.As(err, &te) {
		tb.Fatalf("Load: got error %v, want a *TopologyError", err)
	}
	return te.Problems
}

func TestLoadSeed(t *testing.T) {
	t.Parallel()
	topo, err := LoadFile(filepath.Join("testdata", "seed.yaml"))
	if err != nil {
		t.Fatalf("LoadFile: got %v, want no error", err)
	}
	wantNodes := []handler.Node{{Name: "node01", Platform: "aws"}, {Name: "node02", Platform: "azure"}, {Name: "node03", Platform: "ipmi"}}
	if got := topo.Nodes(); !reflect.DeepEqual(got, wantNodes) {
		t.Errorf("Nodes: got %v, want %v", got, wantNodes)
	}
	if got, want := topo.NodeCount(), 3; got != want {
		t.Errorf("NodeCount: got %d, want %d", got, want)
	}
	if got, want := topo.PlatformNames(), []string{"ipmi"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PlatformNames: got %v, want %v", got, want)
	}
	if got := topo.Groups(); len(got) != 0 {
		t.Errorf("Groups: got %v, want none", got)
	}
	ipmi := topo.platforms["ipmi"]
	if got, want := ipmi.required, []string{"name", "ipmi_username"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ipmi variables: got %v, want %v", got, want)
	}
	if got, want := ipmi.offCode, 111; got != want {
		t.Errorf("ipmi status_off_exit_code: got %d, want %d", got, want)
	}
	if got, want := ipmi.timeout, time.Duration(0); got != want {
		t.Errorf("ipmi timeout: got %v, want %v (the runner's default)", got, want)
	}
	if got := len(ipmi.commands); got != 4 {
		t.Errorf("ipmi commands: got %d, want 4", got)
	}
	status := ipmi.commands[handler.ActionStatus]
	if !strings.HasPrefix(status, "output=$(ipmitool") || !strings.HasSuffix(status, "\nfi") {
		t.Errorf("ipmi status: got %q, want the block text without a trailing newline", status)
	}
	if got, want := topo.nodes["node03"].vars["ipmi_password"], "adminpass"; got != want {
		t.Errorf("node03 ipmi_password: got %q, want %q", got, want)
	}
	wantCheck := []Problem{
		{2, `node "node01": platform "aws" is not defined`},
		{3, `node "node02": platform "azure" is not defined`},
	}
	if got := topo.Check(); !reflect.DeepEqual(got, wantCheck) {
		t.Errorf("Check: got %v, want %v", got, wantCheck)
	}
}

func TestLoadValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		src       string
		nodes     []handler.Node
		groups    []handler.Group
		platforms []string
		vars      map[string]map[string]string // node -> key -> value
	}{
		{
			name:  "empty file",
			src:   "",
			nodes: []handler.Node{},
		},
		{
			name:  "comment only",
			src:   "# nothing yet\n",
			nodes: []handler.Node{},
		},
		{
			name:  "no nodes, no platforms",
			src:   "static_nodes:\n",
			nodes: []handler.Node{},
		},
		{
			name:      "nodes alias",
			src:       "nodes:\n  b: {platform: p}\n  a: {platform: p}\nplatforms:\n  p: {status: exit 0}\n",
			nodes:     []handler.Node{{Name: "a", Platform: "p"}, {Name: "b", Platform: "p"}},
			platforms: []string{"p"},
		},
		{
			name:  "values kept as written",
			src:   "static_nodes:\n  n1: {platform: p, port: 0623, on: yes, ratio: 1.50, big: 1e3, quoted: \"007\", nothing: ~, empty: ''}\n",
			nodes: []handler.Node{{Name: "n1", Platform: "p"}},
			vars: map[string]map[string]string{"n1": {
				"platform": "p", "port": "0623", "on": "yes", "ratio": "1.50", "big": "1e3", "quoted": "007", "empty": "",
			}},
		},
		{
			name:  "node without platform",
			src:   "static_nodes:\n  lonely: {ip: 10.0.0.1}\n  blank:\n",
			nodes: []handler.Node{{Name: "blank", Platform: "missing"}, {Name: "lonely", Platform: "missing"}},
		},
		{
			name: "anchors and merge keys",
			src: "static_nodes:\n" +
				"  n1: &ipmi {platform: ipmi, user: admin}\n" +
				"  n2: *ipmi\n" +
				"  n3: {<<: *ipmi, user: root}\n",
			nodes: []handler.Node{{Name: "n1", Platform: "ipmi"}, {Name: "n2", Platform: "ipmi"}, {Name: "n3", Platform: "ipmi"}},
			vars: map[string]map[string]string{
				"n2": {"platform": "ipmi", "user": "admin"},
				"n3": {"platform": "ipmi", "user": "root"},
			},
		},
		{
			name: "groups in expansion order, duplicates dropped",
			src: "static_nodes:\n  node01: {}\n  node02: {}\n  node03: {}\n  gpu.1: {}\n" +
				"groups:\n  cloud: [\"node[02-03]\", node01, node02]\n  all: \"gpu.1,node[01-03]\"\n  none: []\n",
			nodes: []handler.Node{{Name: "gpu.1", Platform: "missing"}, {Name: "node01", Platform: "missing"}, {Name: "node02", Platform: "missing"}, {Name: "node03", Platform: "missing"}},
			groups: []handler.Group{
				{Name: "all", Nodes: []string{"gpu.1", "node01", "node02", "node03"}},
				{Name: "cloud", Nodes: []string{"node02", "node03", "node01"}},
				{Name: "none", Nodes: []string{}},
			},
		},
		{
			name:      "platform with every key",
			src:       "platforms:\n  x:\n    variables: [name]\n    optional_variables: {port: \"623\"}\n    power_on: a\n    power_off: b\n    restart: c\n    status: d\n    status_off_exit_code: 3\n    timeout: 1m30s\n",
			nodes:     []handler.Node{},
			platforms: []string{"x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			topo := load(t, tt.src)
			if got := topo.Nodes(); !reflect.DeepEqual(got, tt.nodes) {
				t.Errorf("Nodes: got %v, want %v", got, tt.nodes)
			}
			if got := topo.Groups(); len(got) != 0 || len(tt.groups) != 0 {
				if !reflect.DeepEqual(got, tt.groups) {
					t.Errorf("Groups: got %v, want %v", got, tt.groups)
				}
			}
			if got := topo.PlatformNames(); len(got) != 0 || len(tt.platforms) != 0 {
				if !reflect.DeepEqual(got, tt.platforms) {
					t.Errorf("PlatformNames: got %v, want %v", got, tt.platforms)
				}
			}
			for name, want := range tt.vars {
				if got := topo.nodes[name].vars; !reflect.DeepEqual(got, want) {
					t.Errorf("node %s values: got %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestLoadPlatformFields(t *testing.T) {
	t.Parallel()
	topo := load(t, `platforms:
  x:
    variables: [name, user]
    optional_variables:
      port: "0623"
      host:
    status: exit 0
    restart: ""
    status_off_exit_code: 3
    timeout: 1m30s
`)
	p := topo.platforms["x"]
	if got, want := p.optional, []optionalVar{{"port", "0623"}, {"host", ""}}; !reflect.DeepEqual(got, want) {
		t.Errorf("optional: got %v, want %v", got, want)
	}
	if got, want := p.offCode, 3; got != want {
		t.Errorf("offCode: got %d, want %d", got, want)
	}
	if got, want := p.timeout, 90*time.Second; got != want {
		t.Errorf("timeout: got %v, want %v", got, want)
	}
	if _, ok := p.commands[handler.ActionRestart]; ok {
		t.Errorf("restart: got a command for an empty script, want none")
	}
	if got, want := p.commands[handler.ActionStatus], "exit 0"; got != want {
		t.Errorf("status: got %q, want %q", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []Problem
	}{
		{
			name: "syntax error",
			src:  "static_nodes:\n  n1: [\n",
			want: []Problem{{2, "did not find expected node content"}},
		},
		{
			name: "unknown top-level key",
			src:  "static_nodes: {}\nplatform: {}\n",
			want: []Problem{{2, `unknown key "platform" (did you mean "platforms"?) (want static_nodes, groups or platforms)`}},
		},
		{
			name: "both nodes and static_nodes",
			src:  "static_nodes: {}\nplatforms: {}\nnodes: {}\n",
			want: []Problem{{3, `both "static_nodes" (line 1) and "nodes" are set; use one`}},
		},
		{
			name: "top level not a mapping",
			src:  "- a\n- b\n",
			want: []Problem{{1, "the topology must be a mapping of key: value"}},
		},
		{
			name: "two documents",
			src:  "static_nodes: {}\n---\nplatforms: {}\n",
			want: []Problem{{2, "more than one YAML document; the topology is one document"}},
		},
		{
			name: "node sets name",
			src:  "static_nodes:\n  n1:\n    platform: p\n    name: other\n",
			want: []Problem{{4, `node "n1": "name" is the node's key and cannot be set`}},
		},
		{
			name: "nested node value",
			src:  "static_nodes:\n  n1:\n    platform: p\n    bmc:\n      host: x\n    tags: [a]\n",
			want: []Problem{
				{5, `node "n1": "bmc" must be a single value, not a list or mapping`},
				{6, `node "n1": "tags" must be a single value, not a list or mapping`},
			},
		},
		{
			name: "node is not a mapping",
			src:  "static_nodes:\n  n1: aws\n",
			want: []Problem{{2, `node "n1" must be a mapping of key: value`}},
		},
		{
			name: "bad node name",
			src:  "static_nodes:\n  ok1: {}\n  \"bad name\": {}\n  \"n[1]\": {}\n",
			want: []Problem{
				{3, `node name "bad name" may only contain letters, digits, '-', '_' and '.'`},
				{4, `node name "n[1]" may only contain letters, digits, '-', '_' and '.'`},
			},
		},
		{
			name: "node defined twice",
			src:  "static_nodes:\n  n1: {}\n  n2: {}\n  n1: {}\n",
			want: []Problem{{4, `static_nodes: key "n1" is set twice (first at line 2)`}},
		},
		{
			name: "node key set twice",
			src:  "static_nodes:\n  n1:\n    ip: a\n    ip: b\n",
			want: []Problem{{4, `node "n1": key "ip" is set twice (first at line 3)`}},
		},
		{
			name: "unknown platform key",
			src:  "platforms:\n  ipmi:\n    variables: [name]\n    power_of: x\n    colour: red\n",
			want: []Problem{
				{4, `platform "ipmi": unknown key "power_of" (did you mean "power_on"?)`},
				{5, `platform "ipmi": unknown key "colour"`},
			},
		},
		{
			name: "variable both required and optional",
			src:  "platforms:\n  p:\n    variables: [name, port]\n    optional_variables:\n      port: \"623\"\n",
			want: []Problem{{5, `platform "p": variable "port" is both required and optional`}},
		},
		{
			name: "variable listed twice",
			src:  "platforms:\n  p:\n    variables:\n      - a\n      - a\n",
			want: []Problem{{5, `platform "p": variable "a" is listed twice (first at line 4)`}},
		},
		{
			name: "invalid variable names",
			src:  "platforms:\n  p:\n    variables: [name, ipmi-user, 1x]\n    optional_variables:\n      \"bad var\": x\n",
			want: []Problem{
				{3, `platform "p": variable name "ipmi-user" is not a valid shell variable name`},
				{3, `platform "p": variable name "1x" is not a valid shell variable name`},
				{5, `platform "p": variable name "bad var" is not a valid shell variable name`},
			},
		},
		{
			name: "variables not a list",
			src:  "platforms:\n  p:\n    variables: name\n",
			want: []Problem{{3, `platform "p": variables must be a list of names like [name, ipmi_username]`}},
		},
		{
			name: "optional default not a scalar",
			src:  "platforms:\n  p:\n    optional_variables:\n      port: [1]\n",
			want: []Problem{{4, `platform "p": default of optional variable "port" must be a single value`}},
		},
		{
			name: "status_off_exit_code out of range",
			src: "platforms:\n" +
				"  a: {status_off_exit_code: 0}\n" +
				"  b: {status_off_exit_code: 256}\n" +
				"  c: {status_off_exit_code: off}\n" +
				"  d: {status_off_exit_code: -1}\n",
			want: []Problem{
				{2, `platform "a": status_off_exit_code must be a number from 1 to 255, got "0"`},
				{3, `platform "b": status_off_exit_code must be a number from 1 to 255, got "256"`},
				{4, `platform "c": status_off_exit_code must be a number from 1 to 255, got "off"`},
				{5, `platform "d": status_off_exit_code must be a number from 1 to 255, got "-1"`},
			},
		},
		{
			name: "bad timeouts",
			src:  "platforms:\n  a: {timeout: 30}\n  b: {timeout: 0s}\n  c: {timeout: -5s}\n",
			want: []Problem{
				{2, `platform "a": timeout "30" is not a duration like 30s or 2m`},
				{3, `platform "b": timeout must be more than 0, got "0s"`},
				{4, `platform "c": timeout must be more than 0, got "-5s"`},
			},
		},
		{
			name: "command not text",
			src:  "platforms:\n  p:\n    status: [exit 0]\n",
			want: []Problem{{3, `platform "p": status must be a shell script (text)`}},
		},
		{
			name: "group with unknown node and bad hostlist",
			src:  "static_nodes:\n  node01: {}\ngroups:\n  cloud:\n    - node01\n    - \"node[01-02]\"\n    - \"node[01\"\n  \"bad group\": [node01]\n",
			want: []Problem{
				{6, `group "cloud": node "node02" is not defined`},
				{7, `group "cloud": hostlist "node[01": unclosed '['`},
				{8, `group name "bad group" may only contain letters, digits, '-', '_' and '.'`},
			},
		},
		{
			name: "group not a list",
			src:  "groups:\n  g: {a: b}\n",
			want: []Problem{{2, `group "g" must be a list of hostlist expressions`}},
		},
		{
			name: "NUL in a value",
			src:  "static_nodes:\n  n1: {platform: p, v: \"a\\0b\"}\n",
			want: []Problem{{2, `node "n1": "v" contains a NUL byte, which no command can be given`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := loadProblems(t, tt.src)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\ngot  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestLoadReportsAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	src := `static_nodes:
  node01: {platform: ipmi, name: x}
  node02: {platform: ipmi}
colour: blue
groups:
  cloud: ["node[01-03]"]
platforms:
  ipmi:
    variables: [name, ipmi_username]
    power_of: x
    timeout: soon
`
	_, err := Load(strings.NewReader(src))
	var te *TopologyError
	if !errors.As(err, &te) {
		t.Fatalf("Load: got %v, want a *TopologyError", err)
	}
	want := strings.Join([]string{
		`topology:2: node "node01": "name" is the node's key and cannot be set`,
		`topology:4: unknown key "colour" (want static_nodes, groups or platforms)`,
		`topology:6: group "cloud": node "node03" is not defined`,
		`topology:10: platform "ipmi": unknown key "power_of" (did you mean "power_on"?)`,
		`topology:11: platform "ipmi": timeout "soon" is not a duration like 30s or 2m`,
	}, "\n")
	if got := err.Error(); got != want {
		t.Errorf("Error():\ngot\n%s\nwant\n%s", got, want)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte("static_nodes: {}\n\nplatforms:\n  ipmi: {power_of: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	want := path + `:4: platform "ipmi": unknown key "power_of" (did you mean "power_on"?)`
	if err == nil || err.Error() != want {
		t.Errorf("LoadFile: got %v, want %s", err, want)
	}

	_, err = LoadFile(filepath.Join(dir, "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of an absent file: got %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	topo := load(t, `static_nodes:
  node01: {platform: ipmi, ipmi_username: admin}
  node07: {platform: ipmi}
  x: {platform: foo}
  y: {ip: 10.0.0.9}
  z: {platform: ipmi, ipmi_username: ~}
platforms:
  ipmi:
    variables: [name, ipmi_username, bmc]
    optional_variables: {port: "623"}
`)
	want := []Problem{
		{2, `node "node01": missing variable "bmc" required by platform "ipmi"`},
		{3, `node "node07": missing variable "ipmi_username" required by platform "ipmi"`},
		{3, `node "node07": missing variable "bmc" required by platform "ipmi"`},
		{4, `node "x": platform "foo" is not defined`},
		{5, `node "y": no platform`},
		{6, `node "z": missing variable "ipmi_username" required by platform "ipmi"`},
		{6, `node "z": missing variable "bmc" required by platform "ipmi"`},
	}
	if got := topo.Check(); !reflect.DeepEqual(got, want) {
		t.Errorf("Check:\ngot  %v\nwant %v", got, want)
	}
	if got, want := want[0].Describe("topology.yaml"), `topology.yaml:2: node "node01": missing variable "bmc" required by platform "ipmi"`; got != want {
		t.Errorf("Describe: got %q, want %q", got, want)
	}
}

// Merge keys that form a cycle are a problem with its line, not a stack
// overflow (which killed the process), and merges nested many levels deep,
// each merging the level below ten times, load in their own size, not ten
// to the power of their depth (7 levels took 6 s, 20 would never end).
func TestLoadMergeCyclesAndFanOut(t *testing.T) {
	t.Parallel()
	cycles := []struct {
		name string
		src  string
		line int
	}{
		{"a node merges itself", "static_nodes:\n  n: &n {platform: p, <<: *n}\n", 2},
		{"a platform merges itself", "platforms:\n  p: &p\n    status: exit 0\n    <<: [*p]\n", 2},
	}
	for _, tt := range cycles {
		got := withDeadline(t, tt.src)
		if len(got) == 0 || got[0].Line != tt.line || !strings.Contains(got[0].Msg, "merges a mapping into itself") {
			t.Errorf("%s: got %v, want a problem at line %d saying it merges itself", tt.name, got, tt.line)
		}
	}

	var b strings.Builder
	b.WriteString("static_nodes:\n  a0: &a0 {platform: p, k: v}\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	b.WriteString("platforms:\n  p:\n    variables: [k]\n    status: exit 0\n")
	if got := withDeadline(t, b.String()); len(got) != 0 {
		t.Fatalf("nested merges: got problems %v, want none", got)
	}
	topo := load(t, b.String())
	if got := topo.nodes["a20"].vars; got["k"] != "v" || got["platform"] != "p" {
		t.Errorf("a20: got %v, want the values merged from a0", got)
	}
}

// withDeadline loads src and returns its problems, failing the test when
// loading takes more than ten seconds.
func withDeadline(tb testing.TB, src string) []Problem {
	tb.Helper()
	done := make(chan []Problem, 1)
	go func() {
		_, err := Load(strings.NewReader(src))
		var te *TopologyError
		if errors.As(err, &te) {
			done <- te.Problems
			return
		}
		done <- nil
	}()
	select {
	case p := <-done:
		return p
	case <-time.After(10 * time.Second):
		tb.Fatalf("Load did not finish within 10s")
		return nil
	}
}
