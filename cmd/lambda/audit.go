package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// teeAudit records every audit record in the store and also writes it to w
// (stdout, which Lambda sends to CloudWatch) as one JSON line, so the record
// outlives a recycled /tmp. A line is written even when the store fails,
// with "stored": false and the store's error.
//
// Lines never carry a secret: request records hold none, result variables
// arrive redacted, headers (the token) are never recorded, and command
// stdout/stderr are left out (only their sizes are given): they are
// unfiltered text, the SQLite log keeps them, and CloudWatch is usually
// readable by more people than the database. As a last guard, any
// occurrence of the JWT secret in a line is replaced.
type teeAudit struct {
	store  handler.AuditLog
	log    *slog.Logger
	scrubs [][]byte // the secret as it could appear in a line, raw and JSON-escaped

	mu sync.Mutex
	w  io.Writer
}

var _ handler.AuditLog = (*teeAudit)(nil)

func newTeeAudit(store handler.AuditLog, w io.Writer, secret string, log *slog.Logger) *teeAudit {
	t := &teeAudit{store: store, w: w, log: log}
	if secret != "" {
		esc, _ := json.Marshal(secret)
		t.scrubs = [][]byte{[]byte(secret), esc[1 : len(esc)-1]}
	}
	return t
}

// BeginRequest implements handler.AuditLog.
func (t *teeAudit) BeginRequest(ctx context.Context, rec *handler.RequestRecord) error {
	err := t.store.BeginRequest(ctx, rec)
	t.writeRequest("begin", rec, err)
	return err
}

// FinishRequest implements handler.AuditLog.
func (t *teeAudit) FinishRequest(ctx context.Context, rec *handler.RequestRecord) error {
	err := t.store.FinishRequest(ctx, rec)
	t.writeRequest("finish", rec, err)
	return err
}

// RecordRequest implements handler.AuditLog.
func (t *teeAudit) RecordRequest(ctx context.Context, rec *handler.RequestRecord) error {
	err := t.store.RecordRequest(ctx, rec)
	t.writeRequest("record", rec, err)
	return err
}

// RecordResult implements handler.AuditLog.
func (t *teeAudit) RecordResult(ctx context.Context, requestID string, res *handler.Result) error {
	err := t.store.RecordResult(ctx, requestID, res)
	var exit *int
	if res.ExitCode >= 0 {
		exit = &res.ExitCode
	}
	t.write(resultLine{
		Audit:           "result",
		RequestID:       requestID,
		Node:            res.Node,
		Platform:        res.Platform,
		Action:          string(res.Action),
		StartedAt:       lineTime(res.Start),
		DurationMS:      res.Duration.Milliseconds(),
		ExitCode:        exit,
		State:           res.State,
		Success:         res.Success,
		Missing:         res.Missing,
		Ran:             res.Ran,
		TimedOut:        res.TimedOut,
		StdoutBytes:     len(res.Stdout),
		StderrBytes:     len(res.Stderr),
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		Variables:       handler.RedactVariables(res.Variables),
		Error:           res.Error,
		Stored:          err == nil,
		StoreError:      errText(err),
	})
	return err
}

// maxQueryInLine matches the audit database's cap on the stored query.
const maxQueryInLine = 4096

// requestLine is a request record as a JSON line.
type requestLine struct {
	Audit       string `json:"audit"` // "request"
	Event       string `json:"event"` // begin (actions, before commands run), finish, or record (one write: listings, rejections)
	ID          string `json:"id"`
	Time        string `json:"time"`
	Transport   string `json:"transport"`
	TransportID string `json:"transport_id,omitempty"`
	RemoteAddr  string `json:"remote_addr,omitempty"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query,omitempty"`
	Action      string `json:"action,omitempty"`
	Caller      string `json:"caller,omitempty"`
	Role        string `json:"role,omitempty"`
	NodeCount   int    `json:"node_count"`
	Status      int    `json:"status,omitempty"` // absent at begin
	Error       string `json:"error,omitempty"`
	DurationMS  int64  `json:"duration_ms"`
	State       string `json:"state"`
	Stored      bool   `json:"stored"` // the SQLite write succeeded
	StoreError  string `json:"store_error,omitempty"`
}

// resultLine is one node's result as a JSON line.
type resultLine struct {
	Audit           string            `json:"audit"` // "result"
	RequestID       string            `json:"request_id"`
	Node            string            `json:"node"`
	Platform        string            `json:"platform"`
	Action          string            `json:"action"`
	StartedAt       string            `json:"started_at"`
	DurationMS      int64             `json:"duration_ms"`
	ExitCode        *int              `json:"exit_code"` // null when the command did not exit on its own
	State           string            `json:"state"`
	Success         bool              `json:"success"`
	Missing         bool              `json:"missing"`
	Ran             bool              `json:"ran"`
	TimedOut        bool              `json:"timed_out"`
	StdoutBytes     int               `json:"stdout_bytes"`
	StderrBytes     int               `json:"stderr_bytes"`
	StdoutTruncated bool              `json:"stdout_truncated"`
	StderrTruncated bool              `json:"stderr_truncated"`
	Variables       map[string]string `json:"variables,omitempty"`
	Error           string            `json:"error,omitempty"`
	Stored          bool              `json:"stored"`
	StoreError      string            `json:"store_error,omitempty"`
}

func (t *teeAudit) writeRequest(event string, rec *handler.RequestRecord, err error) {
	query := rec.Query
	if len(query) > maxQueryInLine {
		query = strings.ToValidUTF8(query[:maxQueryInLine], "") + "..."
	}
	t.write(requestLine{
		Audit:       "request",
		Event:       event,
		ID:          rec.ID,
		Time:        lineTime(rec.Time),
		Transport:   rec.Transport,
		TransportID: rec.TransportID,
		RemoteAddr:  rec.RemoteAddr,
		Method:      rec.Method,
		Path:        rec.Path,
		Query:       query,
		Action:      rec.Action,
		Caller:      rec.Caller,
		Role:        rec.Role,
		NodeCount:   rec.NodeCount,
		Status:      rec.Status,
		Error:       rec.Error,
		DurationMS:  rec.Duration.Milliseconds(),
		State:       rec.State,
		Stored:      err == nil,
		StoreError:  errText(err),
	})
}

// write encodes v as one line (encoding/json escapes newlines, so a value
// cannot start a line of its own) and writes it in one call.
func (t *teeAudit) write(v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.log.Error("encode audit line", "err", err)
		return
	}
	line := buf.Bytes()
	for _, s := range t.scrubs {
		if len(s) > 0 && bytes.Contains(line, s) {
			line = bytes.ReplaceAll(line, s, []byte(handler.Redacted))
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.w.Write(line); err != nil {
		t.log.Error("write audit line", "err", err)
	}
}

func lineTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
