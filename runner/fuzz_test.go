package runner

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

// FuzzLoad: loading any bytes never panics and either yields a topology
// whose every node can be prepared for every action, or reports problems,
// each with a message, the same ones every time.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{
		filepath.Join("testdata", "seed.yaml"),
		filepath.Join("..", "cmd", "local", "etc", "topology.yaml"),
		filepath.Join("..", "cmd", "local", "etc", "demo-topology.yaml"),
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"static_nodes:\n  n1: {platform: p, port: 0623, on: yes, quoted: \"007\", nothing: ~, empty: ''}\n",
		"nodes:\n  b: {platform: p}\n  a: {platform: p}\ngroups:\n  g: [\"a\", \"b\"]\nplatforms:\n  p: {status: exit 0}\n",
		"static_nodes:\n  n: {platform: p, v: \"$(touch x)\\n`id`\"}\nplatforms:\n  p:\n    variables: [v]\n    optional_variables: {o: d}\n    status: echo \"$v\"\n    status_exit_codes: {112: starting, 113: stopping}\n    timeout: 1s\n",
		"base: &b {platform: p}\nstatic_nodes:\n  n1: {<<: *b, x: 1}\n  n2: *b\n",
		"static_nodes: {a: {platform: p}}\nnodes: {}\n",
		"static_nodes:\n  n: {platform: p}\nplatforms:\n  p: {variables: [name, name], statsu: x, status_off_exit_code: 0}\n",
		"---\na: 1\n---\nb: 2\n",
		"groups:\n  g: [\"x[1-100]\"]\n",
		"static_nodes:\n  n: {platform: p, k: \"a\\0b\"}\n",
		"a: &a [*a]\n",
		"{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		topo, err := Load(bytes.NewReader(src))
		if err != nil {
			var te *TopologyError
			if !errors.As(err, &te) || topo != nil || len(te.Problems) == 0 {
				t.Fatalf("Load: got %v, %#v; want nil and a *TopologyError with problems", topo, err)
			}
			for _, p := range te.Problems {
				if p.Msg == "" || p.Line < 0 {
					t.Fatalf("problem %+v: want a message and a line >= 0", p)
				}
			}
			if _, again := Load(bytes.NewReader(src)); again == nil || again.Error() != err.Error() {
				t.Fatalf("loading twice: got %v then %v, want the same problems", err, again)
			}
			return
		}

		nodes := topo.Nodes()
		if len(nodes) != topo.NodeCount() {
			t.Fatalf("Nodes: got %d, NodeCount %d", len(nodes), topo.NodeCount())
		}
		names := make([]string, len(nodes))
		for i, n := range nodes {
			names[i] = n.Name
			if !validName(n.Name) || n.Platform == "" {
				t.Fatalf("node %+v: want a valid name and a platform (or \"missing\")", n)
			}
		}
		if !sort.StringsAreSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("Nodes: got %v, want sorted and unique", names)
		}
		for _, g := range topo.Groups() {
			for _, m := range g.Nodes {
				if _, ok := slices.BinarySearch(names, m); !ok {
					t.Fatalf("group %s: member %q is not a node", g.Name, m)
				}
			}
		}
		_ = topo.Check()

		r := New(topo, Options{BaseEnv: []string{"PATH=/bin", "HOME=/root"}})
		for _, name := range names {
			for _, a := range handler.Actions {
				j, res := r.prepare(a, name)
				if j == nil {
					if res.Node != name || res.Error == "" || res.Success {
						t.Fatalf("%s %s not runnable: got %+v, want the node, an error and no success", a, name, res)
					}
					continue
				}
				keys := map[string]bool{}
				for _, kv := range j.env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || keys[k] || strings.ContainsRune(kv, 0) {
						t.Fatalf("%s %s env: entry %q is malformed or repeated in %q", a, name, kv, j.env)
					}
					keys[k] = true
					if rv, given := j.res.Variables[k]; given && handler.IsSecretName(k) && rv != handler.Redacted {
						t.Fatalf("%s %s: secret-looking %s recorded as %q", a, name, k, rv)
					} else if given && !handler.IsSecretName(k) && rv != v {
						t.Fatalf("%s %s: %s recorded as %q, given %q", a, name, k, rv, v)
					}
				}
				if j.script == "" || j.timeout <= 0 {
					t.Fatalf("%s %s: got script %q timeout %v, want a script and a deadline", a, name, j.script, j.timeout)
				}
			}
		}
	})
}
