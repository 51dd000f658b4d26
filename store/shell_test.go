package store_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/store"
)

// TestSQLiteShellReadsWhileWriting runs the real sqlite3 shell, as an admin
// would, against a store that holds the file open and keeps writing.
func TestSQLiteShellReadsWhileWriting(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{store.JournalWAL, store.JournalDelete} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s, path := openStore(t, store.Options{JournalMode: mode})
			writeRequest(t, s, "r-first", 5)
			now := newRequest("r-now")
			now.Time = time.Now()
			now.Status = 200
			if err := s.RecordRequest(context.Background(), now); err != nil {
				t.Fatal(err)
			}

			// A writer that keeps going while the shell reads.
			var written atomic.Int64
			written.Store(5)
			stop := make(chan struct{})
			done := make(chan error)
			go func() {
				ctx := context.Background()
				for i := 0; ; i++ {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					id := fmt.Sprintf("r-bg-%05d", i)
					if err := s.BeginRequest(ctx, newRequest(id)); err != nil {
						done <- err
						return
					}
					for j := range 5 {
						if err := s.RecordResult(ctx, id, newResult(fmt.Sprintf("node%03d", j))); err != nil {
							done <- err
							return
						}
						written.Add(1)
					}
				}
			}()

			var last int64
			for i := range 5 {
				got, err := strconv.ParseInt(shell(t, path, "SELECT count(*) FROM results"), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				if got < last {
					t.Errorf("read %d: got %d results, fewer than the %d read before", i, got, last)
				}
				last = got
				time.Sleep(10 * time.Millisecond)
			}
			// The queries the README offers, while writes go on.
			for _, c := range []struct {
				name, sql, want string
			}{
				{"a node's history", "SELECT node, action, success FROM audit WHERE node = 'node001' ORDER BY time DESC LIMIT 1",
					"node001|power_off|1"},
				{"the last hour", "SELECT id FROM requests WHERE time >= datetime('now', '-1 hour')", "r-now"},
				{"since yesterday", "SELECT id FROM requests WHERE time >= date('now', '-1 day')", "r-now"},
				{"who powered off node001", "SELECT DISTINCT caller FROM audit WHERE node = 'node001' AND action = 'power_off'",
					"alice"},
				{"journal mode", "PRAGMA journal_mode", map[string]string{store.JournalWAL: "wal", store.JournalDelete: "delete"}[mode]},
			} {
				if got := shell(t, path, c.sql); got != c.want {
					t.Errorf("%s: got %q, want %q", c.name, got, c.want)
				}
			}

			close(stop)
			if err := <-done; err != nil {
				t.Fatalf("writer: %v", err)
			}
			// Every write the store made is visible to the shell, the store
			// still open.
			got := shell(t, path, "SELECT count(*) FROM results")
			if want := strconv.FormatInt(written.Load(), 10); got != want {
				t.Errorf("results after the writer stopped: got %s, want %s", got, want)
			}
			if last == 0 {
				t.Error("the shell never saw a result")
			}
		})
	}
}
