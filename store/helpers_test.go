package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/store"
)

// openStore opens a store on a fresh file in tb.TempDir and closes it at
// the end of the test. It returns the store and the file's path.
func openStore(tb testing.TB, opts store.Options) (*store.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audit.db")
	return openStoreAt(tb, path, opts), path
}

// openStoreAt opens a store on path and closes it at the end of the test.
func openStoreAt(tb testing.TB, path string, opts store.Options) *store.Store {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := store.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// rawDB opens path with plain SQL and no help from the store, the way a
// second program would, to read back what the store wrote.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	u := url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		tb.Fatalf("open raw db: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// queryRow returns the single row query yields, column name to value
// (int64, string or nil), so tests can compare whole rows.
func queryRow(tb testing.TB, db *sql.DB, query string, args ...any) map[string]any {
	tb.Helper()
	rows := queryRows(tb, db, query, args...)
	if len(rows) != 1 {
		tb.Fatalf("%s: got %d rows, want 1", query, len(rows))
	}
	return rows[0]
}

func queryRows(tb testing.TB, db *sql.DB, query string, args ...any) []map[string]any {
	tb.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return out
}

// queryInt returns the single integer query yields.
func queryInt(tb testing.TB, db *sql.DB, query string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkRow fails the test for each column of want that differs in got.
func checkRow(tb testing.TB, what string, got, want map[string]any) {
	tb.Helper()
	for col, w := range want {
		g, ok := got[col]
		if !ok {
			tb.Errorf("%s: no column %s", what, col)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			tb.Errorf("%s: %s: got %#v, want %#v", what, col, g, w)
		}
	}
}

// shell runs the real sqlite3 shell on path, as an admin would.
func shell(tb testing.TB, path string, sqlText string) string {
	tb.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		tb.Skip("sqlite3 shell not installed (apt-get install sqlite3)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-cmd", ".timeout 5000", path, sqlText)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("sqlite3 %q: %v: %s", sqlText, err, stderr.String())
	}
	if stderr.Len() > 0 {
		tb.Errorf("sqlite3 %q: stderr: %s", sqlText, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// testTime is a fixed request time with milliseconds, to check the stored
// format exactly.
var testTime = time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("CET", 3600))

// newRequest is a plausible request record with id.
func newRequest(id string) *handler.RequestRecord {
	return &handler.RequestRecord{
		ID:         id,
		Time:       testTime,
		Transport:  "http",
		RemoteAddr: "192.0.2.7:51234",
		Method:     "DELETE",
		Path:       "/",
		Query:      "nodes=node[01-02]",
		Action:     string(handler.ActionPowerOff),
		Caller:     "alice",
		Role:       "operator",
		NodeCount:  2,
	}
}

// newResult is a plausible successful power_off result for node.
func newResult(node string) *handler.Result {
	return &handler.Result{
		Node:      node,
		Platform:  "ipmi",
		Action:    handler.ActionPowerOff,
		Ran:       true,
		Start:     testTime.Add(time.Second),
		Duration:  1234 * time.Millisecond,
		ExitCode:  0,
		State:     handler.StateOK,
		Success:   true,
		Stdout:    "Chassis Power Control: Down/Off\n",
		Variables: map[string]string{"name": node, "ipmi_username": "admin"},
	}
}

// writeRequest writes one whole request with n results through s.
func writeRequest(tb testing.TB, s *store.Store, id string, n int) {
	tb.Helper()
	ctx := context.Background()
	rec := newRequest(id)
	if err := s.BeginRequest(ctx, rec); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := s.RecordResult(ctx, id, newResult(fmt.Sprintf("node%03d", i))); err != nil {
			tb.Fatal(err)
		}
	}
	rec.Status = 200
	rec.Duration = time.Second
	if err := s.FinishRequest(ctx, rec); err != nil {
		tb.Fatal(err)
	}
}
