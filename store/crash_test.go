package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/store"
)

// crashEnv names the database a re-executed test binary writes to before
// killing itself; see crashChild.
const crashEnv = "FLIGHT_POWER_STORE_CRASH_DB"

// crashRecorded is how many results the child records, each committed,
// before it starts the stream it dies in the middle of.
const crashRecorded = 20

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		os.Exit(2) // not reached: crashChild kills the process
	}
	os.Exit(m.Run())
}

// crashChild finishes one request, begins another, records crashRecorded
// results, then keeps recording from another goroutine while it sends
// itself SIGKILL: no Close, no checkpoint, a write perhaps half done.
func crashChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, path, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fail(err)
	}
	done := newRequest("r-done")
	if err := s.BeginRequest(ctx, done); err != nil {
		fail(err)
	}
	done.Status = 200
	if err := s.FinishRequest(ctx, done); err != nil {
		fail(err)
	}
	rec := newRequest("r-crash")
	if err := s.BeginRequest(ctx, rec); err != nil {
		fail(err)
	}
	for i := range crashRecorded {
		if err := s.RecordResult(ctx, rec.ID, newResult(fmt.Sprintf("node%03d", i))); err != nil {
			fail(err)
		}
	}
	go func() {
		for i := crashRecorded; ; i++ {
			if err := s.RecordResult(ctx, rec.ID, newResult(fmt.Sprintf("node%03d", i))); err != nil {
				fail(err)
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestCrashMidStream(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child: got %v, want it killed; output: %s", err, out)
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: got %v, want killed by SIGKILL; output: %s", err, out)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("the child left no -wal file (%v): the crash did not happen mid-stream", err)
	}

	s := openStoreAt(t, path, store.Options{})
	n, err := s.MarkInterrupted(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("MarkInterrupted after the crash: got %d, want 1", n)
	}

	db := rawDB(t, path)
	for _, c := range []struct {
		id   string
		want map[string]any
	}{
		{"r-done", map[string]any{"state": "done", "status": int64(200)}},
		{"r-crash", map[string]any{"state": "interrupted", "status": nil,
			"error": "interrupted: the server stopped before this request finished"}},
	} {
		checkRow(t, c.id, queryRow(t, db, "SELECT * FROM requests WHERE id = ?", c.id), c.want)
	}
	got := queryInt(t, db, "SELECT count(*) FROM results WHERE request_id = 'r-crash' AND node < ?",
		fmt.Sprintf("node%03d", crashRecorded))
	if got != crashRecorded {
		t.Errorf("results recorded before the stream: got %d, want %d", got, crashRecorded)
	}
	t.Logf("results committed before the kill: %d", queryInt(t, db, "SELECT count(*) FROM results"))

	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatal(err)
	}
	if check != "ok" {
		t.Errorf("integrity_check: got %q, want ok", check)
	}
}
