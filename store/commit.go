package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Group commit. Every write of this process goes through one goroutine,
// which takes the writes that queued while its last commit ran and commits
// them in one transaction. A caller still returns only once its own write is
// committed, so an audit row is durable when BeginRequest returns; under
// load, concurrent requests share one commit (one set of WAL frames, one
// lock round) instead of paying one each, and wait in arrival order. A write
// that finds no queue is one autocommit statement, as before.

// maxBatch bounds one transaction, so one commit stays short.
const maxBatch = 256

// Each write waits at most the busy timeout in all, from when it is asked
// for: queued behind this process's other writes and waiting for another
// process's lock together. Without that bound, writes queued behind a lock
// that another process holds (an admin's open transaction in the sqlite3
// shell) failed one busy timeout after another, and the 20th request
// waited 20 of them for its 503. A write whose time is up is not run, so
// nothing its caller was told failed is written later.

// errClosed is the error of a write after Close.
var errClosed = errors.New("audit log is closed")

// bindFunc gives a write its prepared statement: as it is for a write
// alone, or bound to the batch's transaction.
type bindFunc func(*sql.Stmt) *sql.Stmt

// pendingWrite is one write waiting for its commit.
type pendingWrite struct {
	exec     func(ctx context.Context, bind bindFunc) error
	deadline time.Time // the busy timeout after the write was asked for
	done     chan error
}

// write queues exec and waits until it is committed or has failed.
func (s *Store) write(exec func(ctx context.Context, bind bindFunc) error) error {
	w := &pendingWrite{exec: exec, deadline: time.Now().Add(s.busy), done: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return errClosed
	}
	s.writes <- w
	s.closeMu.RUnlock()
	return <-w.done
}

// writer commits queued writes until Close.
func (s *Store) writer() {
	defer close(s.writerDone)
	for w := range s.writes {
		batch := []*pendingWrite{w}
	drain:
		for len(batch) < maxBatch {
			select {
			case w, ok := <-s.writes:
				if !ok {
					break drain
				}
				batch = append(batch, w)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit writes batch and tells each write how it went.
func (s *Store) commit(batch []*pendingWrite) {
	live := batch[:0]
	for _, w := range batch {
		if time.Now().After(w.deadline) {
			w.done <- s.timeUp(nil)
			continue
		}
		live = append(live, w)
	}
	batch = live
	switch len(batch) {
	case 0:
		return
	case 1:
		batch[0].done <- s.execAlone(batch[0])
		return
	}
	err := func() error {
		// The batch may wait for the lock until its first write's time is up.
		first := batch[0].deadline
		for _, w := range batch[1:] {
			if w.deadline.Before(first) {
				first = w.deadline
			}
		}
		ctx, cancel := context.WithDeadline(context.Background(), first)
		defer cancel()
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		bind := func(st *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, st) }
		for _, w := range batch {
			if err := w.exec(ctx, bind); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		return tx.Commit()
	}()
	if err == nil {
		for _, w := range batch {
			w.done <- nil
		}
		return
	}
	// Nothing of the batch is in the file. Each write is tried again on
	// its own, so one bad write cannot fail the others and each caller
	// gets its own answer.
	s.logger.Debug("group commit failed; writing one by one", "writes", len(batch), "err", err)
	for _, w := range batch {
		w.done <- s.execAlone(w)
	}
}

// execAlone runs one write as its own autocommit statement, waiting for
// the lock until the write's time is up.
func (s *Store) execAlone(w *pendingWrite) error {
	if time.Now().After(w.deadline) {
		return s.timeUp(nil)
	}
	ctx, cancel := context.WithDeadline(context.Background(), w.deadline)
	defer cancel()
	err := w.exec(ctx, func(st *sql.Stmt) *sql.Stmt { return st })
	if err != nil && ctx.Err() != nil {
		return s.timeUp(err)
	}
	return err
}

// timeUp is the error of a write that waited the busy timeout in vain.
func (s *Store) timeUp(err error) error {
	if err == nil {
		err = errors.New("database is locked")
	}
	return fmt.Errorf("gave up after waiting %s for the write lock (another process holds it, or writes are stuck): %w", s.busy, err)
}
