package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"

	"github.com/openflighthpc/flight-power/handler"
)

// powerAction is what one of status, on, off and restart sends and how it
// words each node's outcome, as the original client did.
type powerAction struct {
	method  string
	doing   string // the word for success of on, off and restart
	failure string // the word for failure
	verb    string // for help: what the command does
}

func powerActions(name string) (powerAction, bool) {
	switch name {
	case "status":
		return powerAction{method: http.MethodGet, failure: "Unknown", verb: "show the power state of nodes: On, Off or Unknown"}, true
	case "on":
		return powerAction{method: http.MethodPatch, doing: "Starting", failure: "Failed to start", verb: "power nodes on"}, true
	case "off":
		return powerAction{method: http.MethodDelete, doing: "Stopping", failure: "Failed to stop", verb: "power nodes off"}, true
	case "restart":
		return powerAction{method: http.MethodPut, doing: "Restarting", failure: "Failed to restart", verb: "restart nodes"}, true
	}
	return powerAction{}, false
}

func powerUsage(name string) string {
	act, _ := powerActions(name)
	return fmt.Sprintf(`usage: flight-power %[1]s TARGETS... [--groups] [--json] [--timeout 5m]

%[2]s. TARGETS are node hostlists (node01 'node[01-10]' gpu[1-4]), or
group names with --groups (-g); several travel in one request, joined
with commas. Each node answers with one row, in the server's order; when
several nodes answer, a summary with the failed nodes goes to stderr.

flags:
  -g, --groups         TARGETS are group names
  --json               print {"action","request_id","ok","failed","nodes":[...]} (see README)
  --timeout DURATION   give up when the server has not answered (default 5m)
  --config, --base_url, --jwt_token   see flight-power help

exit status: 0 every node succeeded; 1 a node failed, is unknown or is
not in the topology; 2 usage or config error; 3 server unreachable,
token rejected or server error; 130 interrupted.
`, name, upperFirst(act.verb))
}

// runPower asks the server to run one power action on the targets.
func runPower(ctx context.Context, e env, name string, args []string) error {
	act, _ := powerActions(name)
	fs := newFlagSet(name)
	sf := addServerFlags(fs)
	var groups bool
	fs.BoolVar(&groups, "groups", false, "TARGETS are group names")
	fs.BoolVar(&groups, "g", false, "short for --groups")
	// The original client's deprecated --nodes (-n) did nothing: accepted,
	// so that its callers keep working.
	fs.Bool("nodes", false, "ignored")
	fs.Bool("n", false, "ignored")
	targets, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, powerUsage(name))
		return nil
	}
	if err != nil {
		return err
	}
	what := "node hostlist"
	if groups {
		what = "group name"
	}
	if len(targets) == 0 {
		return usageErrorf("%s needs at least one %s, e.g. flight-power %s 'node[01-04]' (run flight-power help %s)", name, what, name, name)
	}
	for _, t := range targets {
		if strings.TrimSpace(t) == "" {
			return usageErrorf("%s: an empty %s was given", name, what)
		}
	}

	cfg, err := loadConfig(fs, e.getenv)
	if err != nil {
		return err
	}
	c := newClient(cfg)
	a, err := c.do(ctx, act.method, "/", targetQuery(groups, targets))
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == exitInterrupted && name != "status" {
			return &exitError{code: exitInterrupted, err: fmt.Errorf("%w: some nodes may still change state: check with flight-power status %s%s",
				errInterrupted, groupsFlag(groups), strings.Join(targets, " "))}
		}
		return err
	}
	var doc handler.Document[handler.CommandAttributes]
	if err := c.decode(a, &doc); err != nil {
		return err
	}
	out := actionOutput{Action: name, RequestID: a.requestID, Nodes: make([]nodeResult, 0, len(doc.Data))}
	var failed []string
	for _, r := range doc.Data {
		nr := act.result(r)
		out.Nodes = append(out.Nodes, nr)
		if !nr.OK {
			failed = append(failed, nr.Node)
		}
	}
	out.OK = len(failed) == 0 && len(out.Nodes) > 0
	out.Failed = handler.CompressHostlist(failed)

	if sf.json {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		writeTable(e.stdout, out.rows())
		if len(out.Nodes) > 1 {
			fmt.Fprintln(e.stderr, out.summary())
		}
	}
	if len(out.Nodes) == 0 {
		return &exitError{code: exitNodesFailed, err: fmt.Errorf("%s answered no nodes", cfg.baseURL)}
	}
	if !out.OK {
		return errNodesFailed
	}
	return nil
}

func groupsFlag(groups bool) string {
	if groups {
		return "--groups "
	}
	return ""
}

// actionOutput is what status, on, off and restart print with --json. Its
// fields are a stable interface for scripts: new ones may be added, none
// renamed or removed.
type actionOutput struct {
	Action    string       `json:"action"`     // status, on, off or restart
	RequestID string       `json:"request_id"` // the audit log's id of the request ("" from servers without one)
	OK        bool         `json:"ok"`         // every node succeeded
	Failed    string       `json:"failed"`     // the nodes that did not, as a hostlist ("" when none)
	Nodes     []nodeResult `json:"nodes"`      // one per node, in the server's order
}

// nodeResult is one node's outcome.
type nodeResult struct {
	Node       string `json:"node"`
	Platform   string `json:"platform"`
	OK         bool   `json:"ok"`          // the command succeeded (status: on or off was determined)
	State      string `json:"state"`       // on, off, unknown (status); ok, failed (the others); missing
	Result     string `json:"result"`      // the word the table shows: On, Off, Starting, Failed to stop...
	Missing    bool   `json:"missing"`     // the node is not in the server's topology
	ExitCode   *int   `json:"exit_code"`   // the command's exit status; null when it did not exit on its own or did not run
	DurationMS int64  `json:"duration_ms"` // how long the command ran
	TimedOut   bool   `json:"timed_out"`
	Error      string `json:"error"` // why it failed; "" on success
}

// result words one node's answer. Servers that predate the state and
// error attributes (the original power-server) get them derived from
// success, running and missing.
func (act powerAction) result(r handler.Resource[handler.CommandAttributes]) nodeResult {
	a := r.Attributes
	name := r.ID
	if name == "" {
		name = a.NodeName
	}
	nr := nodeResult{
		Node:       name,
		Platform:   a.Platform,
		OK:         a.Success && !a.Missing,
		State:      a.State,
		Missing:    a.Missing,
		ExitCode:   a.ExitCode,
		DurationMS: a.DurationMS,
		TimedOut:   a.TimedOut,
		Error:      a.Error,
	}
	running := a.Running.Value != nil && *a.Running.Value
	if nr.State == "" {
		nr.State = derivedState(act.doing == "", a.Missing, a.Success, running)
	}
	if a.Missing && nr.Error == "" {
		nr.Error = "not in the topology"
	}
	if nr.OK {
		nr.Error = ""
	}
	switch {
	case !nr.OK:
		nr.Result = act.failure
	case act.doing != "":
		nr.Result = act.doing
	case nr.State == handler.StateOn || nr.State == handler.StateOff || nr.State == handler.StateUnknown:
		// The original's words, from the original's attributes.
		if running {
			nr.Result = "On"
		} else {
			nr.Result = "Off"
		}
	default:
		// A state newer than this client (a cloud node "starting"): say it.
		nr.Result = upperFirst(strings.NewReplacer("_", " ", "-", " ").Replace(nr.State))
	}
	return nr
}

func derivedState(status, missing, success, running bool) string {
	switch {
	case missing:
		return handler.StateMissing
	case status && success && running:
		return handler.StateOn
	case status && success:
		return handler.StateOff
	case status:
		return handler.StateUnknown
	case success:
		return handler.StateOK
	default:
		return handler.StateFailed
	}
}

// rows are the table: node, word and, for failures, the reason.
func (o actionOutput) rows() [][]string {
	rows := make([][]string, 0, len(o.Nodes))
	for _, n := range o.Nodes {
		row := []string{n.Node, n.Result}
		if !n.OK && n.Error != "" {
			row = append(row, n.Error)
		}
		rows = append(rows, row)
	}
	return rows
}

// summary is the stderr line under a table of several nodes:
// "12 nodes: 10 ok, 2 failed: node[07,42]"; status counts its words
// instead of "ok": "12 nodes: 8 on, 3 off, 1 failed: node05".
func (o actionOutput) summary() string {
	var order []string
	counts := map[string]int{}
	failed := 0
	for _, n := range o.Nodes {
		if !n.OK {
			failed++
			continue
		}
		word := "ok"
		if o.Action == "status" {
			word = strings.ToLower(n.Result)
		}
		if counts[word] == 0 {
			order = append(order, word)
		}
		counts[word]++
	}
	parts := make([]string, 0, len(order)+1)
	for _, w := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[w], w))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed: %s", failed, o.Failed))
	}
	return fmt.Sprintf("%d nodes: %s", len(o.Nodes), strings.Join(parts, ", "))
}
