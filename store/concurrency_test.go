package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/store"
)

// TestConcurrentWritersLoseNothing has 50 goroutines each begin a request,
// record 50 results and finish it. Spread over two stores on one file (two
// servers, or a server and an admin's shell, as far as locking goes), the
// stores contend for SQLite's write lock and must wait for it, not fail:
// with a busy timeout of 0 this test fails with "database is locked".
func TestConcurrentWritersLoseNothing(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name             string
		stores           int
		mode             string
		writers, results int
	}{
		{"one store", 1, store.JournalWAL, 50, 50},
		{"two stores on one file", 2, store.JournalWAL, 50, 50},
		// Each commit is fsynced: ~250 a second here, fewer goroutines.
		{"two stores on one file, DELETE journal", 2, store.JournalDelete, 20, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			writers, results := c.writers, c.results
			path := filepath.Join(t.TempDir(), "audit.db")
			var stores []*store.Store
			for range c.stores {
				stores = append(stores, openStoreAt(t, path, store.Options{JournalMode: c.mode}))
			}

			start := time.Now()
			errs := make(chan error, writers)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					s := stores[w%len(stores)]
					ctx := context.Background()
					rec := newRequest(fmt.Sprintf("r-%02d", w))
					if err := s.BeginRequest(ctx, rec); err != nil {
						errs <- err
						return
					}
					for i := range results {
						if err := s.RecordResult(ctx, rec.ID, newResult(fmt.Sprintf("node%03d", i))); err != nil {
							errs <- err
							return
						}
					}
					rec.Status, rec.NodeCount = 200, results
					if err := s.FinishRequest(ctx, rec); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("writer: %v", err)
			}
			elapsed := time.Since(start)

			db := rawDB(t, path)
			for _, q := range []struct {
				sql  string
				want int64
			}{
				{"SELECT count(*) FROM requests WHERE state = 'done' AND status = 200", int64(writers)},
				{"SELECT count(*) FROM results", int64(writers * results)},
				{"SELECT count(DISTINCT request_id || node) FROM results", int64(writers * results)},
			} {
				if got := queryInt(t, db, q.sql); got != q.want {
					t.Errorf("%s: got %d, want %d", q.sql, got, q.want)
				}
			}
			writes := writers * (results + 2)
			t.Logf("%d writes in %v (%.0f/s)", writes, elapsed.Round(time.Millisecond), float64(writes)/elapsed.Seconds())
		})
	}
}
