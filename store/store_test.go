package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/store"
)

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.db")
	ctx := context.Background()

	s, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	first := queryRows(t, db, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if len(first) != 1 {
		t.Fatalf("after first open: got %d migrations, want 1: %v", len(first), first)
	}
	checkRow(t, "first migration", first[0], map[string]any{"version": int64(1), "name": "0001_init.sql"})
	for _, table := range []string{"requests", "results", "audit"} {
		if n := queryInt(t, db, "SELECT count(*) FROM sqlite_schema WHERE name = ?", table); n != 1 {
			t.Errorf("schema object %s: got %d, want 1", table, n)
		}
	}

	s, err = store.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := queryRows(t, db, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if len(again) != 1 || again[0]["applied_at"] != first[0]["applied_at"] {
		t.Errorf("after reopen: got %v, want %v unchanged", again, first)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.Exec("INSERT INTO schema_migrations VALUES (7, '0007_future.sql', '2030-01-01 00:00:00.000')"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := store.Open(context.Background(), path, store.Options{})
	if err == nil {
		s.Close()
		t.Fatal("open of a newer schema: got no error")
	}
	want := "audit db schema version 7 is newer than this binary knows (1): upgrade flight-power"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got error %q, want it to contain %q", err, want)
	}
}

func TestOpenCreatesParentDirAndPrivateFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "var", "lib", "flight-power")
	path := filepath.Join(dir, "audit.db")
	s := openStoreAt(t, path, store.Options{})
	writeRequest(t, s, "r1", 1)

	for _, c := range []struct {
		name string
		path string
		want os.FileMode
	}{
		{"parent dir", dir, os.ModeDir | 0o750},
		{"db file", path, 0o640},
		{"wal file", path + "-wal", 0o640},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := fi.Mode(); got != c.want {
			t.Errorf("%s mode: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "odd dir #1 ?x=%41", "audit.db")
	s := openStoreAt(t, path, store.Options{})
	writeRequest(t, s, "r1", 2)
	if n := queryInt(t, rawDB(t, path), "SELECT count(*) FROM results"); n != 2 {
		t.Errorf("results in %s: got %d, want 2", path, n)
	}
}

func TestOpenOptionErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts store.Options
		want string
	}{
		{"unknown journal mode", store.Options{JournalMode: "MEMORY"}, `journal mode "MEMORY": want WAL or DELETE`},
		{"negative busy timeout", store.Options{BusyTimeout: -1}, "busy timeout -1ns: must not be negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), c.opts)
			if err == nil {
				s.Close()
				t.Fatalf("got no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestOpenRefusesNonDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, []byte("this is not a sqlite database, it is a text file long enough to have a header"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), path, store.Options{})
	if err == nil {
		s.Close()
		t.Fatal("got no error opening a text file")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("got %q, want it to name %s", err, path)
	}
}

func TestDeleteJournalMode(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{JournalMode: store.JournalDelete})
	writeRequest(t, s, "r1", 3)

	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s-wal: got %v, want not exist", path, err)
	}
	db := rawDB(t, path)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "delete" {
		t.Errorf("journal_mode: got %q, want delete", mode)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM results WHERE request_id = 'r1'"); n != 3 {
		t.Errorf("results: got %d, want 3", n)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, store.Options{})
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("ping open store: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("ping with cancelled context: got no error")
	}
}
