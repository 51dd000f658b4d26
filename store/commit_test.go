package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// syncBuffer is a log destination the writer goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func commitTestRequest(id string) *handler.RequestRecord {
	return &handler.RequestRecord{ID: id, Time: time.Now(), Transport: "http", Method: "GET", Path: "/", Action: "status"}
}

// TestGroupCommitIsolatesAFailedWrite queues writes behind a held
// connection so they commit as one batch, one of them a duplicate id: the
// duplicate alone must fail, every other write must land.
func TestGroupCommitIsolatesAFailedWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var log syncBuffer
	s, err := Open(ctx, filepath.Join(t.TempDir(), "a.db"), Options{
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.BeginRequest(ctx, commitTestRequest("r-dup")); err != nil {
		t.Fatal(err)
	}

	// The store has one connection: holding it stalls the writer on its
	// next write while the others queue.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs := make(chan error, n+2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- s.BeginRequest(ctx, commitTestRequest("r-first")) })
	time.Sleep(50 * time.Millisecond) // the writer takes r-first and waits for the connection
	for i := range n {
		wg.Go(func() { errs <- s.BeginRequest(ctx, commitTestRequest(fmt.Sprintf("r-%02d", i))) })
	}
	wg.Go(func() { errs <- s.BeginRequest(ctx, commitTestRequest("r-dup")) })
	time.Sleep(100 * time.Millisecond) // all queued behind r-first
	conn.Close()
	wg.Wait()
	close(errs)

	var failed []error
	for err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), "r-dup") {
		t.Errorf("got errors %v, want one, for r-dup", failed)
	}
	var rows int
	if err := s.db.QueryRow("SELECT count(*) FROM requests").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if want := n + 2; rows != want {
		t.Errorf("got %d requests rows, want %d", rows, want)
	}
	if !strings.Contains(log.String(), "group commit failed") {
		t.Errorf("the writes were not committed as one batch; log:\n%s", log.String())
	}
}

// TestWriteAfterClose is an error, not a panic or a hang.
func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = s.BeginRequest(context.Background(), commitTestRequest("r-late"))
	if !errors.Is(err, errClosed) {
		t.Errorf("got %v, want %v", err, errClosed)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
