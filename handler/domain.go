// Package handler is the transport-neutral core of flight-power.
//
// A plain Request goes in and a plain Response comes out; routing,
// authentication, roles, hostlist expansion, JSON encoding and the calls that
// record audit rows live here, once, for both the HTTP daemon and the Lambda
// function. The runner and store packages satisfy the small interfaces
// declared in this file; cmd/* wires them together.
package handler

import (
	"context"
	"time"
)

// Action is one of the four power commands a platform defines.
type Action string

// The actions, named as the topology file and the original API name them.
const (
	ActionStatus   Action = "status"
	ActionPowerOn  Action = "power_on"
	ActionPowerOff Action = "power_off"
	ActionRestart  Action = "restart"
)

// Actions lists every action in a stable order.
var Actions = []Action{ActionStatus, ActionPowerOn, ActionPowerOff, ActionRestart}

// Valid reports whether a is one of the four actions.
func (a Action) Valid() bool {
	switch a {
	case ActionStatus, ActionPowerOn, ActionPowerOff, ActionRestart:
		return true
	}
	return false
}

// Node states reported in Result.State.
const (
	StateOn      = "on"      // status: the node is powered on
	StateOff     = "off"     // status: the node is powered off
	StateUnknown = "unknown" // status: could not be determined
	StateOK      = "ok"      // power action: the command exited 0
	StateFailed  = "failed"  // power action: non-zero exit, timeout or not run
	StateMissing = "missing" // the node is not in the topology

	// Transitional status states, for platforms that map status exit codes
	// to them (status_exit_codes). The state was determined, so Success is
	// true; Running keeps the settled state the node is leaving until the
	// move completes: false while starting, true while stopping.
	StateStarting = "starting" // status: on its way on (EC2 pending, Azure starting)
	StateStopping = "stopping" // status: on its way off (EC2 stopping, Azure stopping or deallocating)
)

// Node is a node as the API shows it: its name and platform, never the
// values of its variables.
type Node struct {
	Name     string
	Platform string // "missing" when the node has no platform key
}

// Group is a static group of nodes from the topology.
type Group struct {
	Name  string
	Nodes []string // member node names, in the order their hostlists expand
}

// Result is the outcome of one action on one node.
type Result struct {
	Node     string
	Platform string // the node's platform (even if undefined); "missing" for unknown nodes and nodes without one
	Action   Action
	Missing  bool // the node is not in the topology

	Ran      bool      // the command was started
	Start    time.Time // when the command started (or was skipped)
	Duration time.Duration
	ExitCode int // -1 when the command did not exit on its own (not run, killed)
	TimedOut bool

	State   string // one of the State* constants
	Success bool   // exit 0; for status: on, off or a transitional state was determined
	Running *bool  // status only: true on or stopping, false off or starting, nil otherwise

	Stdout, Stderr                   string
	StdoutTruncated, StderrTruncated bool

	// Variables are the values the command was given, with secret-looking
	// ones already redacted. Never shown in API answers.
	Variables map[string]string

	Error string // short reason when Success is false
}

// Runner knows the topology and runs power commands.
type Runner interface {
	// Nodes lists every node, sorted by name.
	Nodes() []Node
	// Groups lists every static group, sorted by name.
	Groups() []Group
	// Run runs action on every named node with bounded fan-out and calls
	// report once per name, from the calling goroutine, as each finishes. Unknown
	// names are reported as missing without running anything. When ctx ends,
	// running commands are killed with their process group and names not yet
	// started are reported as not run; Run returns only after every name has
	// been reported.
	Run(ctx context.Context, action Action, names []string, report func(Result))
}

// Request states recorded in the audit log.
const (
	RequestRunning     = "running"     // written ahead, commands may be running
	RequestDone        = "done"        // finished and answered
	RequestInterrupted = "interrupted" // cut short by a crash, marked at the next start
)

// RequestRecord is one request as the audit log keeps it.
type RequestRecord struct {
	ID          string
	Time        time.Time
	Transport   string // "http" or "lambda"
	TransportID string // e.g. the Lambda request id
	RemoteAddr  string
	Method      string
	Path        string
	Query       string // raw query, capped
	Action      string // an Action, "list_nodes", "list_groups", or "" when rejected before routing
	Caller      string // the token's sub
	Role        string
	NodeCount   int // nodes targeted
	Status      int // HTTP status answered
	Error       string
	Duration    time.Duration
	State       string // one of the Request* constants
}

// AuditLog records every request and every per-node result durably.
type AuditLog interface {
	// BeginRequest records a request before any command runs. If it fails,
	// nothing may run.
	BeginRequest(ctx context.Context, rec *RequestRecord) error
	// RecordResult records one node's result for a begun request.
	RecordResult(ctx context.Context, requestID string, res *Result) error
	// FinishRequest records the answer to a begun request.
	FinishRequest(ctx context.Context, rec *RequestRecord) error
	// RecordRequest records a request that ran no commands (a rejection or a
	// listing) in one write.
	RecordRequest(ctx context.Context, rec *RequestRecord) error
}
