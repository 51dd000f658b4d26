package store

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestConnectionPragmas checks the settings each connection gets from the
// DSN; they are per connection, so only the store's own pool can show them.
func TestConnectionPragmas(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts Options
		want map[string]string
	}{
		{"default is WAL", Options{},
			map[string]string{"journal_mode": "wal", "synchronous": "1", "foreign_keys": "1", "busy_timeout": "5000"}},
		{"DELETE", Options{JournalMode: "DELETE", BusyTimeout: 2 * time.Second},
			map[string]string{"journal_mode": "delete", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "2000"}},
		{"lower case delete", Options{JournalMode: "delete"},
			map[string]string{"journal_mode": "delete", "synchronous": "2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for pragma, want := range c.want {
				var got string
				if err := s.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("PRAGMA %s: got %s, want %s", pragma, got, want)
				}
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	one := &fstest.MapFile{Data: []byte("CREATE TABLE a (x INTEGER);")}
	two := &fstest.MapFile{Data: []byte("CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1);")}
	for _, c := range []struct {
		name    string
		runs    []fstest.MapFS // applied one after another to the same file
		wantErr string
		want    []int64 // versions recorded after the last run
		rowsInA int     // rows in table a, where it exists: every statement of a file ran
	}{
		{
			name:    "applies in number order, not name order",
			runs:    []fstest.MapFS{{"0010_b.sql": two, "0002_a.sql": one}},
			want:    []int64{2, 10},
			rowsInA: 1,
		},
		{
			name:    "a later binary applies only the new file",
			runs:    []fstest.MapFS{{"0001_a.sql": one}, {"0001_a.sql": one, "0002_b.sql": two}},
			want:    []int64{1, 2},
			rowsInA: 1,
		},
		{
			name:    "a failing file is rolled back whole",
			runs:    []fstest.MapFS{{"0001_a.sql": one, "0002_bad.sql": {Data: []byte("CREATE TABLE c (z); SELEKT;")}}},
			wantErr: "apply migration 0002_bad.sql",
			want:    []int64{1},
		},
		{
			name:    "unnumbered file",
			runs:    []fstest.MapFS{{"init.sql": one}},
			wantErr: "migration file init.sql: want NNNN_name.sql",
		},
		{
			name:    "number used twice",
			runs:    []fstest.MapFS{{"0001_a.sql": one, "01_b.sql": two}},
			wantErr: "share version 1",
		},
		{
			name:    "database newer than the files",
			runs:    []fstest.MapFS{{"0001_a.sql": one, "0002_b.sql": two}, {"0001_a.sql": one}},
			wantErr: "audit db schema version 2 is newer than this binary knows (1): upgrade flight-power",
			want:    []int64{1, 2},
			rowsInA: 1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "m.db")
			db, err := sql.Open("sqlite", dsn(path, JournalWAL, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			logger := slog.New(slog.DiscardHandler)
			var last error
			for _, fsys := range c.runs {
				last = migrate(context.Background(), db, fsys, logger)
			}
			switch {
			case c.wantErr == "" && last != nil:
				t.Fatalf("got error %v, want none", last)
			case c.wantErr != "" && last == nil:
				t.Fatalf("got no error, want %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(last.Error(), c.wantErr):
				t.Fatalf("got error %q, want it to contain %q", last, c.wantErr)
			}
			var got []int64
			rows, err := db.Query("SELECT version FROM schema_migrations ORDER BY version")
			if err != nil {
				if c.want == nil {
					return // never got as far as creating the table
				}
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var v int64
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("versions recorded: got %v, want %v", got, c.want)
			}
			var rowsInA int
			if err := db.QueryRow("SELECT count(*) FROM a").Scan(&rowsInA); err == nil && rowsInA != c.rowsInA {
				t.Errorf("rows in a: got %d, want %d", rowsInA, c.rowsInA)
			}
			if strings.Contains(c.name, "rolled back") {
				var n int
				if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'c'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("table c from the failed migration: got %d, want 0", n)
				}
			}
		})
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		got  any
		want any
	}{
		{"empty line is NULL", line("", 10), nil},
		{"plain line unchanged", line("alice", 10), "alice"},
		{"invalid UTF-8", line("a\xffb", 10), "a\uFFFDb"},
		{"NUL in a line", line("a\x00b", 10), "a\uFFFDb"},
		{"terminal escape", line("\x1b]0;pwned\x07x", 20), "\uFFFD]0;pwned\uFFFDx"},
		{"line breaks become spaces", line("a\r\nb\tc", 10), "a  b c"},
		{"capped with a mark", line("abcdefghij", 6), "abc…"},
		{"cap on a rune boundary", line("ééééé", 6), "é…"},
		{"empty text is NULL", text(""), nil},
		{"text keeps line breaks", text("a\nb\tc\x1b[0m"), "a\nb\tc\x1b[0m"},
		{"text loses NUL and invalid UTF-8", text("a\x00b\xfe"), "a\uFFFDb\uFFFD"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestFormatTime(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("CET", 3600)
	for _, c := range []struct {
		name string
		in   time.Time
		want string // "" means: close to now
	}{
		{"UTC with milliseconds", time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC), "2026-01-02 03:04:05.678"},
		{"converted to UTC", time.Date(2026, 1, 2, 0, 30, 0, 0, cet), "2026-01-01 23:30:00.000"},
		{"zero is now", time.Time{}, ""},
		{"year 10000 is now", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ""},
	} {
		got := formatTime(c.in)
		if c.want != "" {
			if got != c.want {
				t.Errorf("%s: got %s, want %s", c.name, got, c.want)
			}
			continue
		}
		parsed, err := time.Parse(timeLayout, got)
		if err != nil || time.Since(parsed).Abs() > time.Minute {
			t.Errorf("%s: got %s, want about now", c.name, got)
		}
	}
}
