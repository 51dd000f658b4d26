package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openflighthpc/flight-power/handler"
)

// Caps, in bytes, on stored text. Request fields come from the network and
// are capped defensively; stdout and stderr are stored as the runner gives
// them (it caps them already).
const (
	capShort      = 256 // transport, ids, method, action, caller, role, node, platform, state
	capRemoteAddr = 256
	capPath       = 1024
	capQuery      = 4096
	capError      = 1024
)

// timeLayout is SQLite's own text time format, in UTC, so time >= date('now')
// and datetime('now', '-1 hour') comparisons work in the sqlite3 shell.
const timeLayout = "2006-01-02 15:04:05.000"

const insertRequestSQL = `INSERT INTO requests (
    id, time, transport, transport_id, remote_addr, method, path, query,
    action, caller, role, node_count, status, error, duration_ms, state
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const finishRequestSQL = `UPDATE requests
SET status = ?, error = ?, duration_ms = ?, node_count = ?, state = 'done'
WHERE id = ?`

const insertResultSQL = `INSERT INTO results (
    request_id, node, platform, action, started_at, duration_ms, exit_code,
    state, success, missing, ran, timed_out,
    stdout, stdout_truncated, stderr, stderr_truncated, variables, error
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// The write methods below detach from ctx's cancellation: an audit row must
// not be dropped because the request that asked for it was cancelled or hit
// its deadline. Waiting, behind this process's other writes and for another
// process's lock together, is bounded by the busy timeout; each write is
// committed when it returns, alone or in one transaction with the writes
// queued beside it (commit.go).

// BeginRequest records rec with state 'running' and no status, before any
// command runs. If it fails, nothing may run.
func (s *Store) BeginRequest(ctx context.Context, rec *handler.RequestRecord) error {
	args := requestArgs(rec, nil, nil, handler.RequestRunning)
	err := s.write(func(ctx context.Context, bind bindFunc) error {
		_, err := bind(s.insertRequest).ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("begin request %s: %w", rec.ID, err)
	}
	return nil
}

// RecordRequest records a request that ran no commands (a rejection or a
// listing) as finished, in one write.
func (s *Store) RecordRequest(ctx context.Context, rec *handler.RequestRecord) error {
	args := requestArgs(rec, status(rec.Status), rec.Duration.Milliseconds(), handler.RequestDone)
	err := s.write(func(ctx context.Context, bind bindFunc) error {
		_, err := bind(s.insertRequest).ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record request %s: %w", rec.ID, err)
	}
	return nil
}

// FinishRequest records the answer to a begun request: status, error,
// duration and node count, and state 'done'. A request that was never begun
// is recorded whole rather than lost.
func (s *Store) FinishRequest(ctx context.Context, rec *handler.RequestRecord) error {
	var whole bool
	err := s.write(func(ctx context.Context, bind bindFunc) error {
		r, err := bind(s.finishRequest).ExecContext(ctx,
			status(rec.Status), line(rec.Error, capError), rec.Duration.Milliseconds(), rec.NodeCount, rec.ID)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil || n == 1 {
			return err
		}
		whole = true
		args := requestArgs(rec, status(rec.Status), rec.Duration.Milliseconds(), handler.RequestDone)
		_, err = bind(s.insertRequest).ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish request %s: %w", rec.ID, err)
	}
	if whole {
		s.logger.Warn("finished a request that was never begun; recorded it whole", "request_id", rec.ID)
	}
	return nil
}

// RecordResult records one node's result for a begun request. Variables are
// redacted again here, whatever the caller did.
func (s *Store) RecordResult(ctx context.Context, requestID string, res *handler.Result) error {
	vars, err := variablesJSON(res.Variables)
	if err != nil {
		return fmt.Errorf("record result for %s on %s: %w", requestID, res.Node, err)
	}
	var exit any = res.ExitCode
	if res.ExitCode == -1 {
		exit = nil
	}
	err = s.write(func(ctx context.Context, bind bindFunc) error {
		_, err := bind(s.insertResult).ExecContext(ctx, requestID,
			line(res.Node, capShort),
			line(res.Platform, capShort),
			line(string(res.Action), capShort),
			formatTime(res.Start),
			res.Duration.Milliseconds(),
			exit,
			line(res.State, capShort),
			res.Success,
			res.Missing,
			res.Ran,
			res.TimedOut,
			text(res.Stdout),
			res.StdoutTruncated,
			text(res.Stderr),
			res.StderrTruncated,
			vars,
			line(res.Error, capError),
		)
		return err
	})
	if err != nil {
		return fmt.Errorf("record result for %s on %s: %w", requestID, res.Node, err)
	}
	return nil
}

// requestArgs are the insertRequestSQL arguments for rec. status and
// duration are nil (NULL) while the request runs.
func requestArgs(rec *handler.RequestRecord, status, durationMS any, state string) []any {
	return []any{
		rec.ID,
		formatTime(rec.Time),
		line(rec.Transport, capShort),
		line(rec.TransportID, capShort),
		line(rec.RemoteAddr, capRemoteAddr),
		line(rec.Method, capShort),
		line(rec.Path, capPath),
		line(rec.Query, capQuery),
		line(rec.Action, capShort),
		line(rec.Caller, capShort),
		line(rec.Role, capShort),
		rec.NodeCount,
		status,
		line(rec.Error, capError),
		durationMS,
		state,
	}
}

// status is the HTTP status to store: NULL when none was set.
func status(code int) any {
	if code == 0 {
		return nil
	}
	return code
}

// formatTime formats t in UTC in SQLite's text format. A zero time, or one
// the format cannot hold, becomes now: a row with a rough time beats no row.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.IsZero() || t.Year() < 1 || t.Year() > 9999 {
		t = time.Now().UTC()
	}
	return t.Format(timeLayout)
}

// variablesJSON is the redacted variables as a JSON object, or nil (NULL)
// when there are none. Keys are sorted; invalid UTF-8 becomes U+FFFD and
// control characters are escaped by the encoder.
func variablesJSON(vars map[string]string) (any, error) {
	if len(vars) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(handler.RedactVariables(vars)); err != nil {
		return nil, fmt.Errorf("encode variables: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// line cleans a one-line field from the outside world so it can be stored
// and shown safely: invalid UTF-8 and control characters (NUL, escape
// sequences that a terminal running sqlite3 would obey) become U+FFFD,
// tabs and line breaks become spaces, and the result is capped at max bytes.
// Empty is nil (NULL).
func line(s string, max int) any {
	if s == "" {
		return nil
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		s = strings.Map(func(r rune) rune {
			switch {
			case r == '\t' || r == '\n' || r == '\r':
				return ' '
			case unicode.IsControl(r):
				return '\uFFFD'
			}
			return r
		}, s)
	}
	return truncate(s, max)
}

// text cleans multi-line output: invalid UTF-8 and NUL bytes (which cut a
// value short in the sqlite3 shell and in C code) become U+FFFD. Empty is
// nil (NULL).
func text(s string) any {
	if s == "" {
		return nil
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// truncate cuts s to at most max bytes on a rune boundary, ending in "…"
// when it cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	cut := max - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
