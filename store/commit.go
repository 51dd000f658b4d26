package store

import (
	"context"
	"database/sql"
	"errors"
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

// errClosed is the error of a write after Close.
var errClosed = errors.New("audit log is closed")

// bindFunc gives a write its prepared statement: as it is for a write
// alone, or bound to the batch's transaction.
type bindFunc func(*sql.Stmt) *sql.Stmt

// pendingWrite is one write waiting for its commit.
type pendingWrite struct {
	exec func(ctx context.Context, bind bindFunc) error
	done chan error
}

// write queues exec and waits until it is committed or has failed.
func (s *Store) write(exec func(ctx context.Context, bind bindFunc) error) error {
	w := &pendingWrite{exec: exec, done: make(chan error, 1)}
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
	ctx := context.Background()
	if len(batch) == 1 {
		batch[0].done <- batch[0].exec(ctx, func(st *sql.Stmt) *sql.Stmt { return st })
		return
	}
	err := func() error {
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
		w.done <- w.exec(ctx, func(st *sql.Stmt) *sql.Stmt { return st })
	}
}
