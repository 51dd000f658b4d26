package handler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Resource is one JSON:API resource object, as the original server sent it.
type Resource[A any] struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Attributes A      `json:"attributes"`
}

// Document is a JSON:API document with a list of resources.
type Document[A any] struct {
	Data []Resource[A] `json:"data"`
}

// CommandAttributes are the attributes of one node's result. The first six
// are the original server's; the rest are additive.
type CommandAttributes struct {
	Action     string  `json:"action"`
	NodeName   string  `json:"node-name"`
	Platform   string  `json:"platform"`
	Missing    bool    `json:"missing"`
	Success    bool    `json:"success"`
	Running    Running `json:"running,omitzero"`
	State      string  `json:"state"`
	ExitCode   *int    `json:"exit-code"`
	DurationMS int64   `json:"duration-ms"`
	TimedOut   bool    `json:"timed-out"`
	Error      string  `json:"error,omitempty"`
}

// Running is the status-only running attribute: true, false or null, and
// absent from the other actions' answers.
type Running struct {
	Set   bool
	Value *bool
}

// IsZero reports whether the attribute is absent.
func (r Running) IsZero() bool { return !r.Set }

// MarshalJSON writes true, false or null.
func (r Running) MarshalJSON() ([]byte, error) {
	if r.Value == nil {
		return []byte("null"), nil
	}
	return strconv.AppendBool(nil, *r.Value), nil
}

// UnmarshalJSON reads true, false or null.
func (r *Running) UnmarshalJSON(b []byte) error {
	r.Set = true
	r.Value = nil
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseBool(string(b))
	if err != nil {
		return fmt.Errorf("running: %w", err)
	}
	r.Value = &v
	return nil
}

// NodeAttributes describe one node in GET /nodes: never variable values.
type NodeAttributes struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
}

// GroupAttributes describe one group in GET /groups.
type GroupAttributes struct {
	Name  string   `json:"name"`
	Nodes []string `json:"nodes"`
}

// ErrorObject is one JSON:API error.
type ErrorObject struct {
	Status string `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// ErrorDocument is a JSON:API error document.
type ErrorDocument struct {
	Errors []ErrorObject `json:"errors"`
}

// CommandResource converts a result to its API form.
func CommandResource(r *Result) Resource[CommandAttributes] {
	a := CommandAttributes{
		Action:     string(r.Action),
		NodeName:   r.Node,
		Platform:   r.Platform,
		Missing:    r.Missing,
		Success:    r.Success,
		State:      r.State,
		DurationMS: r.Duration.Milliseconds(),
		TimedOut:   r.TimedOut,
		Error:      r.Error,
	}
	if r.Action == ActionStatus {
		a.Running = Running{Set: true, Value: r.Running}
	}
	if r.ExitCode >= 0 {
		code := r.ExitCode
		a.ExitCode = &code
	}
	return Resource[CommandAttributes]{Type: "commands", ID: r.Node, Attributes: a}
}

func encodeCommands(results []*Result) []byte {
	doc := Document[CommandAttributes]{Data: make([]Resource[CommandAttributes], 0, len(results))}
	for _, r := range results {
		doc.Data = append(doc.Data, CommandResource(r))
	}
	return mustJSON(doc)
}

func encodeNodes(nodes []Node) []byte {
	doc := Document[NodeAttributes]{Data: make([]Resource[NodeAttributes], 0, len(nodes))}
	for _, n := range nodes {
		doc.Data = append(doc.Data, Resource[NodeAttributes]{Type: "nodes", ID: n.Name, Attributes: NodeAttributes{Name: n.Name, Platform: n.Platform}})
	}
	return mustJSON(doc)
}

func encodeGroups(groups []Group) []byte {
	doc := Document[GroupAttributes]{Data: make([]Resource[GroupAttributes], 0, len(groups))}
	for _, g := range groups {
		members := g.Nodes
		if members == nil {
			members = []string{}
		}
		doc.Data = append(doc.Data, Resource[GroupAttributes]{Type: "groups", ID: g.Name, Attributes: GroupAttributes{Name: g.Name, Nodes: members}})
	}
	return mustJSON(doc)
}

func encodeError(status int, detail string) []byte {
	return mustJSON(ErrorDocument{Errors: []ErrorObject{{
		Status: strconv.Itoa(status),
		Title:  http.StatusText(status),
		Detail: detail,
	}}})
}

// mustJSON encodes values built from plain structs, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode json: %v", err))
	}
	return append(b, '\n')
}

func pluralf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
