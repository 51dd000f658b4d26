// Package runner holds the topology model (loading and validating the
// topology file) and runs platform power commands for the handler: the
// environment they get, their deadlines and process groups, output caps and
// bounded fan-out.
//
// The topology file, as Load reads it:
//
//	static_nodes:            # or nodes:, not both
//	  node03: {platform: ipmi, ipmi_username: admin, ipmi_port: 6230}
//	groups:                  # name: [hostlist expressions of defined nodes]
//	  cloud: ["node[01-02]"]
//	platforms:
//	  ipmi:
//	    variables: [name, ipmi_username]   # required; a node lacking one is not run
//	    optional_variables:                # name: default, used when the node lacks it
//	      ipmi_port: "623"
//	    power_on: ...                      # shell scripts; any may be absent
//	    power_off: ...
//	    restart: ...
//	    status: ...                        # exit 0 on, status_off_exit_code off
//	    status_off_exit_code: 111          # 1..255, default 111
//	    status_exit_codes:                 # 3..125: transitional states
//	      112: starting                    #   on its way on
//	      113: stopping                    #   on its way off
//	    timeout: 30s                       # default: Options.DefaultTimeout
//
// A node's key is its name variable. Node values are scalars kept as written
// (0623 stays "0623"); a blank value counts as not set.
package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openflighthpc/flight-power/handler"
)

// DefaultStatusOffExitCode is the status exit code that means "off" when a
// platform does not set status_off_exit_code.
const DefaultStatusOffExitCode = 111

// Problem is one thing wrong with a topology file, at a line (0 when the
// line is not known).
type Problem struct {
	Line int
	Msg  string
}

// Describe renders the problem as "source:line: msg", the form compilers use.
func (p Problem) Describe(source string) string {
	if p.Line <= 0 {
		return source + ": " + p.Msg
	}
	return source + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
}

// TopologyError lists every problem that kept a topology from loading.
type TopologyError struct {
	Source   string // the file path, or "topology" for Load
	Problems []Problem
}

func (e *TopologyError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Describe(e.Source)
	}
	return strings.Join(lines, "\n")
}

// Topology is a loaded, validated topology file. It is never modified after
// loading and is safe for concurrent use.
type Topology struct {
	nodes     map[string]*node
	names     []string // node names, sorted
	groups    []handler.Group
	platforms map[string]*platform
}

// node is a node as the topology file defines it.
type node struct {
	name     string
	line     int
	platform string // "" when the node has no platform key
	vars     map[string]string
}

// value looks up a variable for the node; name is always its key.
func (n *node) value(v string) (string, bool) {
	if v == "name" {
		return n.name, true
	}
	s, ok := n.vars[v]
	return s, ok
}

// platform is a platform's commands and the variables they are given.
type platform struct {
	name     string
	required []string
	optional []optionalVar // in file order
	commands map[handler.Action]string
	offCode  int
	// transitional maps extra status exit codes to StateStarting or
	// StateStopping.
	transitional map[int]string
	timeout      time.Duration // 0: the runner's default
}

type optionalVar struct {
	name, def string
}

// LoadFile reads and validates the topology file at path.
func LoadFile(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return parse(path, data)
}

// Load reads and validates a topology from r. Problems are reported against
// the name "topology".
func Load(r io.Reader) (*Topology, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return parse("topology", data)
}

// Nodes lists every node, sorted by name. A node without a platform key
// shows platform "missing", as results and the original server name it.
func (t *Topology) Nodes() []handler.Node {
	out := make([]handler.Node, len(t.names))
	for i, name := range t.names {
		p := t.nodes[name].platform
		if p == "" {
			p = platformMissing
		}
		out[i] = handler.Node{Name: name, Platform: p}
	}
	return out
}

// Groups lists every static group, sorted by name, members in the order
// their hostlists expand.
func (t *Topology) Groups() []handler.Group {
	out := make([]handler.Group, len(t.groups))
	for i, g := range t.groups {
		out[i] = handler.Group{Name: g.Name, Nodes: slices.Clone(g.Nodes)}
	}
	return out
}

// PlatformNames lists the defined platforms, sorted.
func (t *Topology) PlatformNames() []string {
	out := make([]string, 0, len(t.platforms))
	for name := range t.platforms {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// NodeCount is the number of nodes.
func (t *Topology) NodeCount() int { return len(t.names) }

// Check reports nodes that load but cannot run: no platform, a platform that
// is not defined, or a variable their platform requires that they lack. Such
// nodes are reported per request as well; Check lets `check` say so first.
func (t *Topology) Check() []Problem {
	var out []Problem
	for _, name := range t.names {
		n := t.nodes[name]
		if n.platform == "" {
			out = append(out, Problem{n.line, fmt.Sprintf("node %q: no platform", name)})
			continue
		}
		p, ok := t.platforms[n.platform]
		if !ok {
			out = append(out, Problem{n.line, fmt.Sprintf("node %q: platform %q is not defined", name, n.platform)})
			continue
		}
		for _, v := range p.required {
			if _, ok := n.value(v); !ok {
				out = append(out, Problem{n.line, fmt.Sprintf("node %q: missing variable %q required by platform %q", name, v, p.name)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// parser gathers problems so that one load reports all of them.
type parser struct {
	problems []Problem
	// Merge keys (<<: *anchor) may name a mapping that merges itself, or
	// the same mapping many times over at every level: merged remembers
	// each merged mapping's entries, and reading marks the mappings being
	// read, so a cycle is reported instead of recursing for ever, and
	// nested merges cost their size, not the product of their fan-outs.
	merged  map[*yaml.Node][]pair
	reading map[*yaml.Node]bool
}

func (p *parser) addf(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{line, fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parse(source string, data []byte) (*Topology, error) {
	t := &Topology{nodes: map[string]*node{}, platforms: map[string]*platform{}}
	p := &parser{}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		p.syntax(err)
		return nil, &TopologyError{Source: source, Problems: p.problems}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.addf(extra.Line, "more than one YAML document; the topology is one document")
	} else if !errors.Is(err, io.EOF) {
		p.syntax(err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		p.top(t, resolve(doc.Content[0]))
	}
	if len(p.problems) > 0 {
		sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
		return nil, &TopologyError{Source: source, Problems: p.problems}
	}
	return t, nil
}

func (p *parser) syntax(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			p.syntaxLine(e)
		}
		return
	}
	p.syntaxLine(err.Error())
}

func (p *parser) syntaxLine(msg string) {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.addf(line, "%s", m[2])
		return
	}
	p.addf(0, "%s", strings.TrimPrefix(msg, "yaml: "))
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

type pair struct {
	key   string
	kline int
	val   *yaml.Node // aliases resolved
}

// pairs returns a mapping's entries with YAML merge keys (<<: *anchor)
// applied: explicit keys win over merged ones. what names the mapping in
// messages. A null value is an empty mapping. Duplicate and non-scalar keys
// are reported.
func (p *parser) pairs(n *yaml.Node, what string) ([]pair, bool) {
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n.Line, "%s must be a mapping of key: value", what)
		return nil, false
	}
	if p.reading[n] {
		p.addf(n.Line, "%s: << merges a mapping into itself", what)
		return nil, false
	}
	if p.reading == nil {
		p.reading = map[*yaml.Node]bool{}
	}
	p.reading[n] = true
	defer delete(p.reading, n)
	var explicit, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, p.mergeSources(v, what)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			p.addf(k.Line, "%s: keys must be plain names", what)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.addf(k.Line, "%s: key %q is set twice (first at line %d)", what, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		explicit = append(explicit, pair{k.Value, k.Line, v})
	}
	for _, m := range merged {
		if _, ok := seen[m.key]; ok {
			continue
		}
		seen[m.key] = m.kline
		explicit = append(explicit, m)
	}
	return explicit, true
}

func (p *parser) mergeSources(v *yaml.Node, what string) []pair {
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, s := range v.Content {
			srcs = append(srcs, resolve(s))
		}
	default:
		p.addf(v.Line, "%s: << must merge a mapping or a list of mappings", what)
		return nil
	}
	var out []pair
	for _, s := range srcs {
		if s.Kind != yaml.MappingNode {
			p.addf(s.Line, "%s: << must merge a mapping or a list of mappings", what)
			continue
		}
		ps, done := p.merged[s]
		if !done {
			ps, _ = p.pairs(s, what)
			if p.merged == nil {
				p.merged = map[*yaml.Node][]pair{}
			}
			p.merged[s] = ps
		}
		out = append(out, ps...)
	}
	return out
}

func (p *parser) top(t *Topology, root *yaml.Node) {
	entries, ok := p.pairs(root, "the topology")
	if !ok {
		return
	}
	var nodes, groups, platforms *pair
	for i := range entries {
		e := &entries[i]
		switch e.key {
		case "static_nodes", "nodes":
			if nodes != nil {
				p.addf(e.kline, "both %q (line %d) and %q are set; use one", nodes.key, nodes.kline, e.key)
				continue
			}
			nodes = e
		case "groups":
			groups = e
		case "platforms":
			platforms = e
		default:
			p.addf(e.kline, "unknown key %q%s (want static_nodes, groups or platforms)", e.key, suggest(e.key, "static_nodes", "nodes", "groups", "platforms"))
		}
	}
	if nodes != nil {
		p.nodes(t, nodes)
	}
	sort.Strings(t.names)
	if platforms != nil {
		p.platforms(t, platforms)
	}
	if groups != nil {
		p.groups(t, groups)
	}
}

func (p *parser) nodes(t *Topology, section *pair) {
	entries, _ := p.pairs(section.val, section.key)
	for _, e := range entries {
		if !validName(e.key) {
			p.addf(e.kline, "node name %q may only contain letters, digits, '-', '_' and '.'", e.key)
			continue
		}
		n := &node{name: e.key, line: e.kline, vars: map[string]string{}}
		what := fmt.Sprintf("node %q", e.key)
		kvs, _ := p.pairs(e.val, what)
		for _, kv := range kvs {
			if kv.key == "name" {
				p.addf(kv.kline, "%s: \"name\" is the node's key and cannot be set", what)
				continue
			}
			if kv.val.Kind != yaml.ScalarNode {
				p.addf(kv.val.Line, "%s: %q must be a single value, not a list or mapping", what, kv.key)
				continue
			}
			// A null value (`key:` or `key: ~`) is treated as not set, so a
			// required variable left blank is reported as missing.
			if isNull(kv.val) {
				continue
			}
			if strings.ContainsRune(kv.val.Value, 0) {
				p.addf(kv.val.Line, "%s: %q contains a NUL byte, which no command can be given", what, kv.key)
				continue
			}
			if kv.key == "platform" {
				n.platform = kv.val.Value
			}
			n.vars[kv.key] = kv.val.Value
		}
		t.nodes[n.name] = n
		t.names = append(t.names, n.name)
	}
}

func (p *parser) groups(t *Topology, section *pair) {
	entries, _ := p.pairs(section.val, "groups")
	for _, e := range entries {
		if !validName(e.key) {
			p.addf(e.kline, "group name %q may only contain letters, digits, '-', '_' and '.'", e.key)
			continue
		}
		what := fmt.Sprintf("group %q", e.key)
		var exprs []*yaml.Node
		switch {
		case isNull(e.val):
		case e.val.Kind == yaml.ScalarNode:
			exprs = []*yaml.Node{e.val}
		case e.val.Kind == yaml.SequenceNode:
			for _, c := range e.val.Content {
				exprs = append(exprs, resolve(c))
			}
		default:
			p.addf(e.val.Line, "%s must be a list of hostlist expressions", what)
			continue
		}
		g := handler.Group{Name: e.key, Nodes: []string{}}
		seen := map[string]bool{}
		for _, x := range exprs {
			if x.Kind != yaml.ScalarNode || isNull(x) {
				p.addf(x.Line, "%s: members must be hostlist expressions like node[01-04]", what)
				continue
			}
			names, err := handler.ExpandHostlist(x.Value, 0)
			if err != nil {
				p.addf(x.Line, "%s: %v", what, err)
				continue
			}
			for _, name := range names {
				if _, ok := t.nodes[name]; !ok {
					p.addf(x.Line, "%s: node %q is not defined", what, name)
					continue
				}
				if !seen[name] {
					seen[name] = true
					g.Nodes = append(g.Nodes, name)
				}
			}
		}
		t.groups = append(t.groups, g)
	}
	sort.Slice(t.groups, func(i, j int) bool { return t.groups[i].Name < t.groups[j].Name })
}

// platformKeys are the keys a platform may set, for messages and suggestions.
var platformKeys = []string{"variables", "optional_variables", "power_on", "power_off", "restart", "status", "status_off_exit_code", "status_exit_codes", "timeout"}

// transitionalStates are the states status_exit_codes may name.
var transitionalStates = []string{handler.StateStarting, handler.StateStopping}

func (p *parser) platforms(t *Topology, section *pair) {
	entries, _ := p.pairs(section.val, "platforms")
	for _, e := range entries {
		pl := &platform{name: e.key, commands: map[handler.Action]string{}, offCode: DefaultStatusOffExitCode}
		what := fmt.Sprintf("platform %q", e.key)
		kvs, _ := p.pairs(e.val, what)
		required := map[string]int{}
		var optionalLines []int
		offLine := 0
		codeLines := map[int]int{} // transitional code -> its line
		for _, kv := range kvs {
			switch kv.key {
			case "variables":
				for _, v := range p.varList(kv.val, what) {
					if first, dup := required[v.Value]; dup {
						p.addf(v.Line, "%s: variable %q is listed twice (first at line %d)", what, v.Value, first)
						continue
					}
					required[v.Value] = v.Line
					pl.required = append(pl.required, v.Value)
				}
			case "optional_variables":
				ps, _ := p.pairs(kv.val, what+": optional_variables")
				for _, o := range ps {
					if !validVar(o.key) {
						p.addf(o.kline, "%s: variable name %q is not a valid shell variable name", what, o.key)
						continue
					}
					def := ""
					switch {
					case isNull(o.val):
					case o.val.Kind == yaml.ScalarNode:
						def = o.val.Value
					default:
						p.addf(o.val.Line, "%s: default of optional variable %q must be a single value", what, o.key)
						continue
					}
					if strings.ContainsRune(def, 0) {
						p.addf(o.val.Line, "%s: default of %q contains a NUL byte, which no command can be given", what, o.key)
						continue
					}
					pl.optional = append(pl.optional, optionalVar{o.key, def})
					optionalLines = append(optionalLines, o.kline)
				}
			case "power_on", "power_off", "restart", "status":
				if isNull(kv.val) {
					continue
				}
				if kv.val.Kind != yaml.ScalarNode {
					p.addf(kv.val.Line, "%s: %s must be a shell script (text)", what, kv.key)
					continue
				}
				// An empty script would "succeed" without doing anything:
				// treat it as no command.
				if strings.ContainsRune(kv.val.Value, 0) {
					p.addf(kv.val.Line, "%s: %s contains a NUL byte", what, kv.key)
					continue
				}
				if strings.TrimSpace(kv.val.Value) != "" {
					pl.commands[handler.Action(kv.key)] = kv.val.Value
				}
			case "status_off_exit_code":
				code, err := strconv.Atoi(kv.val.Value)
				if kv.val.Kind != yaml.ScalarNode || err != nil || code < 1 || code > 255 {
					p.addf(kv.val.Line, "%s: status_off_exit_code must be a number from 1 to 255, got %q", what, kv.val.Value)
					continue
				}
				pl.offCode = code
				offLine = kv.val.Line
			case "status_exit_codes":
				pl.transitional = p.statusExitCodes(kv.val, what, codeLines)
			case "timeout":
				d, err := time.ParseDuration(kv.val.Value)
				switch {
				case kv.val.Kind != yaml.ScalarNode || err != nil:
					p.addf(kv.val.Line, "%s: timeout %q is not a duration like 30s or 2m", what, kv.val.Value)
				case d <= 0:
					p.addf(kv.val.Line, "%s: timeout must be more than 0, got %q", what, kv.val.Value)
				default:
					pl.timeout = d
				}
			default:
				p.addf(kv.kline, "%s: unknown key %q%s", what, kv.key, suggest(kv.key, platformKeys...))
			}
		}
		for i, o := range pl.optional {
			if _, ok := required[o.name]; ok {
				p.addf(optionalLines[i], "%s: variable %q is both required and optional", what, o.name)
			}
		}
		if line, ok := codeLines[pl.offCode]; ok {
			at := "the default status_off_exit_code"
			if offLine > 0 {
				at = fmt.Sprintf("status_off_exit_code (line %d)", offLine)
			}
			p.addf(line, "%s: status_exit_codes: %d is already %s, which means off", what, pl.offCode, at)
			delete(pl.transitional, pl.offCode)
		}
		t.platforms[pl.name] = pl
	}
}

// statusExitCodes reads a platform's status_exit_codes mapping, exit code
// to transitional state, recording each code's line in lines. Codes 0-2 and
// 126-255 are refused: they already mean on, a generic failure, a shell
// error or a signal, and reading one as "on its way" would hide a broken
// node.
func (p *parser) statusExitCodes(n *yaml.Node, what string, lines map[int]int) map[int]string {
	what += ": status_exit_codes"
	entries, ok := p.pairs(n, what)
	if !ok {
		return nil
	}
	out := map[int]string{}
	for _, e := range entries {
		code, err := strconv.Atoi(e.key)
		if err != nil || code < 3 || code > 125 {
			p.addf(e.kline, "%s: exit code must be a number from 3 to 125, got %q (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')", what, e.key)
			continue
		}
		if first, dup := lines[code]; dup {
			p.addf(e.kline, "%s: exit code %d is set twice (first at line %d)", what, code, first)
			continue
		}
		if e.val.Kind != yaml.ScalarNode || !slices.Contains(transitionalStates, e.val.Value) {
			p.addf(e.val.Line, "%s: %d: state must be %s, got %q%s", what, code, strings.Join(transitionalStates, " or "), e.val.Value, suggest(e.val.Value, transitionalStates...))
			continue
		}
		lines[code] = e.kline
		out[code] = e.val.Value
	}
	return out
}

// varList reads a list of variable names.
func (p *parser) varList(n *yaml.Node, what string) []*yaml.Node {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.addf(n.Line, "%s: variables must be a list of names like [name, ipmi_username]", what)
		return nil
	}
	var out []*yaml.Node
	for _, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.ScalarNode || !validVar(c.Value) {
			p.addf(c.Line, "%s: variable name %q is not a valid shell variable name", what, c.Value)
			continue
		}
		out = append(out, c)
	}
	return out
}

// validName reports whether s is a name a hostlist can spell.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validVar reports whether s can be an environment variable name the shell
// will expand: [A-Za-z_][A-Za-z0-9_]*.
func validVar(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// suggest returns ` (did you mean "x"?)` when key is a near miss of one of
// the known keys.
func suggest(key string, known ...string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
