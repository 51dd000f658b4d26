package main

import (
	"encoding/json"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

func jsonDecoder(s string) *json.Decoder {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	return dec
}

func sortedKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func boolp(b bool) *bool { return &b }

// Words follow the original client for its attributes, and stay honest
// about states it never knew.
func TestResultWords(t *testing.T) {
	t.Parallel()
	running := func(v *bool) handler.Running { return handler.Running{Set: true, Value: v} }
	cases := []struct {
		name    string
		action  string
		attrs   handler.CommandAttributes
		ok      bool
		word    string
		state   string
		errText string
	}{
		{"status on", "status", handler.CommandAttributes{Success: true, Running: running(boolp(true)), State: "on"}, true, "On", "on", ""},
		{"status off", "status", handler.CommandAttributes{Success: true, Running: running(boolp(false)), State: "off"}, true, "Off", "off", ""},
		{"status unknown", "status", handler.CommandAttributes{Running: running(nil), State: "unknown", Error: "exit 3"}, false, "Unknown", "unknown", "exit 3"},
		{"status starting", "status", handler.CommandAttributes{Success: true, Running: running(nil), State: "starting"}, true, "Starting", "starting", ""},
		{"status powering_off", "status", handler.CommandAttributes{Success: true, Running: running(boolp(true)), State: "powering_off"}, true, "Powering off", "powering_off", ""},
		{"status missing", "status", handler.CommandAttributes{Missing: true, State: "missing", Error: "node is not in the topology"}, false, "Unknown", "missing", "node is not in the topology"},
		// The original server sends neither state nor error.
		{"original status on", "status", handler.CommandAttributes{Success: true, Running: running(boolp(true))}, true, "On", "on", ""},
		{"original status off", "status", handler.CommandAttributes{Success: true, Running: running(boolp(false))}, true, "Off", "off", ""},
		{"original status unknown", "status", handler.CommandAttributes{Running: running(nil)}, false, "Unknown", "unknown", ""},
		{"original missing", "on", handler.CommandAttributes{Missing: true}, false, "Failed to start", "missing", "not in the topology"},
		{"original off ok", "off", handler.CommandAttributes{Success: true}, true, "Stopping", "ok", ""},
		{"original restart failed", "restart", handler.CommandAttributes{}, false, "Failed to restart", "failed", ""},
		{"on ok", "on", handler.CommandAttributes{Success: true, State: "ok"}, true, "Starting", "ok", ""},
		{"off failed", "off", handler.CommandAttributes{State: "failed", Error: "timed out after 30s"}, false, "Failed to stop", "failed", "timed out after 30s"},
		{"restart ok", "restart", handler.CommandAttributes{Success: true, State: "ok"}, true, "Restarting", "ok", ""},
	}
	for _, c := range cases {
		act, ok := powerActions(c.action)
		if !ok {
			t.Fatalf("%s: no action %q", c.name, c.action)
		}
		got := act.result(handler.Resource[handler.CommandAttributes]{ID: "n1", Attributes: c.attrs})
		if got.OK != c.ok || got.Result != c.word || got.State != c.state || got.Error != c.errText || got.Node != "n1" {
			t.Errorf("%s: got ok=%v %q state %q error %q, want ok=%v %q state %q error %q",
				c.name, got.OK, got.Result, got.State, got.Error, c.ok, c.word, c.state, c.errText)
		}
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	n := func(name, word string, ok bool) nodeResult { return nodeResult{Node: name, Result: word, OK: ok} }
	cases := []struct {
		out  actionOutput
		want string
	}{
		{actionOutput{Action: "on", Failed: "node[07,42]", Nodes: []nodeResult{n("node01", "Starting", true), n("node07", "Failed to start", false), n("node42", "Failed to start", false)}},
			"3 nodes: 1 ok, 2 failed: node[07,42]"},
		{actionOutput{Action: "status", Nodes: []nodeResult{n("a1", "Off", true), n("a2", "On", true), n("a3", "Off", true)}},
			"3 nodes: 2 off, 1 on"},
		{actionOutput{Action: "off", Failed: "x[1-2]", Nodes: []nodeResult{n("x1", "Failed to stop", false), n("x2", "Failed to stop", false)}},
			"2 nodes: 2 failed: x[1-2]"},
	}
	for _, c := range cases {
		if got := c.out.summary(); got != c.want {
			t.Errorf("summary: got %q, want %q", got, c.want)
		}
	}
}

func TestParseArgsTakesFlagsAnywhere(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args   []string
		pos    []string
		json   bool
		groups bool
	}{
		{[]string{"--json", "node01"}, []string{"node01"}, true, false},
		{[]string{"node01", "--json"}, []string{"node01"}, true, false},
		{[]string{"a", "-g", "b", "--json", "c"}, []string{"a", "b", "c"}, true, true},
		{[]string{"a", "--", "--json", "-g"}, []string{"a", "--json", "-g"}, false, false},
		{[]string{"--timeout", "1m", "x[1-2]", "--base_url=http://h:1"}, []string{"x[1-2]"}, false, false},
		{nil, nil, false, false},
	}
	for _, c := range cases {
		fs := newFlagSet("status")
		sf := addServerFlags(fs)
		groups := fs.Bool("g", false, "")
		pos, err := parseArgs(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || sf.json != c.json || *groups != c.groups {
			t.Errorf("%q: got %q json=%v groups=%v err=%v, want %q json=%v groups=%v", c.args, pos, sf.json, *groups, err, c.pos, c.json, c.groups)
		}
	}
	fs := newFlagSet("status")
	addServerFlags(fs)
	if _, err := parseArgs(fs, []string{"node01", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h after a target: got %v, want flag.ErrHelp", err)
	}
	_, err := parseArgs(fs, []string{"node01", "--nope"})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "-nope") {
		t.Errorf("unknown flag: got %v, want a usage error naming it", err)
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		name string
		rest []string
		ok   bool
	}{
		{[]string{"status", "node01"}, "status", []string{"node01"}, true},
		{[]string{"--config", "c.yaml", "status", "node01"}, "status", []string{"--config", "c.yaml", "node01"}, true},
		{[]string{"--config=c.yaml", "--json", "list"}, "list", []string{"--config=c.yaml", "--json"}, true},
		{[]string{"--timeout", "1m", "--jwt_token", "t", "on", "x"}, "on", []string{"--timeout", "1m", "--jwt_token", "t", "x"}, true},
		{[]string{"--json"}, "", nil, false},
		{[]string{"--", "status"}, "", nil, false},
		{nil, "", nil, false},
	}
	for _, c := range cases {
		name, rest, ok := splitCommand(c.args)
		if name != c.name || !slices.Equal(rest, c.rest) || ok != c.ok {
			t.Errorf("%q: got %q %q %v, want %q %q %v", c.args, name, rest, ok, c.name, c.rest, c.ok)
		}
	}
}

// Targets travel as the original client sent them.
func TestTargetQuery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		groups  bool
		targets []string
		want    string
	}{
		{false, []string{"node01"}, "nodes=node01"},
		{false, []string{"node[01-10]", "gpu[1-4]"}, "nodes=node%5B01-10%5D,gpu%5B1-4%5D"},
		{false, []string{"rack[1-2]n[01,03]"}, "nodes=rack%5B1-2%5Dn%5B01,03%5D"},
		{true, []string{"rack1", "rack2"}, "groups=rack1,rack2"},
		{false, []string{"a&groups=x"}, "nodes=a%26groups%3Dx"},
	}
	for _, c := range cases {
		if got := targetQuery(c.groups, c.targets); got != c.want {
			t.Errorf("%v %q: got %q, want %q", c.groups, c.targets, got, c.want)
		}
	}
}

func TestParseYAML(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want map[string]string
		err  string
	}{
		{"original", "base_url: http://localhost:6302\njwt_token: abc.def.ghi\n", map[string]string{"base_url": "http://localhost:6302", "jwt_token": "abc.def.ghi"}, ""},
		{"original reference, keys left empty", "# comment\nbase_url:\njwt_token:\n", map[string]string{}, ""},
		{"quoted and timeout", "base_url: 'https://power.example:6302'\njwt_token: \"x\"\ntimeout: 90s\n", map[string]string{"base_url": "https://power.example:6302", "jwt_token": "x", "timeout": "90s"}, ""},
		{"empty file", "", map[string]string{}, ""},
		{"comments only", "# nothing\n", map[string]string{}, ""},
		{"unknown key", "base_url: x\nurl: y\n", nil, `line 2: unknown key "url"`},
		{"list", "- a\n- b\n", nil, "line 1: want key: value lines"},
		{"bad yaml", "base_url: [\n", nil, "yaml:"},
	}
	for _, c := range cases {
		got := map[string]string{}
		err := parseYAML(strings.NewReader(c.in), func(k, v string) error { got[k] = v; return nil })
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !mapsEqual(got, c.want):
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
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

func TestWriteTable(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	writeTable(&b, [][]string{
		{"node01", "On"},
		{"node100", "Failed to start", "exit 1: no BMC"},
		{"n2", "Off"},
		{"nodé3", "Failed to stop", "timed out after 30s"},
	})
	want := "node01   On\n" +
		"node100  Failed to start  exit 1: no BMC\n" +
		"n2       Off\n" +
		"nodé3    Failed to stop   timed out after 30s\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
