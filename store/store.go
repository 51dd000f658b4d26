// Package store is flight-power's audit log: every request and every
// per-node result, written to a SQLite file (modernc.org/sqlite, pure Go)
// that admins query with the stock sqlite3 shell.
//
// The schema lives in the migrations package and is applied by Open.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/migrations"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Journal modes Options.JournalMode accepts.
const (
	JournalWAL    = "WAL"    // the default: readers never block the writer
	JournalDelete = "DELETE" // for network filesystems (EFS), where WAL's shared memory does not work
)

// DefaultBusyTimeout is how long a write waits for another connection's lock
// (the sqlite3 shell, a second server on the same file) before failing.
const DefaultBusyTimeout = 5 * time.Second

// interruptedError is the error MarkInterrupted gives a request cut short.
const interruptedError = "interrupted: the server stopped before this request finished"

// Options configure Open. The zero value is ready to use.
type Options struct {
	JournalMode string        // JournalWAL (default) or JournalDelete (for network filesystems such as EFS)
	BusyTimeout time.Duration // default DefaultBusyTimeout
	Logger      *slog.Logger  // default: discard
}

// Store is the audit log. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	logger *slog.Logger
	busy   time.Duration // how long a write may wait in all (commit.go)

	insertRequest *sql.Stmt
	finishRequest *sql.Stmt
	insertResult  *sql.Stmt

	// writes feeds the group-commit goroutine (commit.go).
	writes     chan *pendingWrite
	writerDone chan struct{}
	closeMu    sync.RWMutex
	closed     bool
}

var _ handler.AuditLog = (*Store)(nil)

// Open opens the audit log at path, creating it and its parent directory
// (mode 0750) when missing, and applies any pending migrations.
//
// In WAL mode writes use synchronous=NORMAL: a commit survives a crash of
// the process but may be lost with the last moments before a power cut; the
// file stays consistent either way. DELETE mode uses synchronous=FULL.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	s, err := open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("open audit db %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string, opts Options) (*Store, error) {
	mode, err := journalMode(opts.JournalMode)
	if err != nil {
		return nil, err
	}
	if opts.BusyTimeout < 0 {
		return nil, fmt.Errorf("busy timeout %s: must not be negative", opts.BusyTimeout)
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "store")

	if path == "" {
		return nil, errors.New("no path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, err
	}
	// Create the file ourselves so it is not world-readable: SQLite gives
	// the -wal and -shm files the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	db, err := sql.Open("sqlite", dsn(abs, mode, opts.BusyTimeout))
	if err != nil {
		return nil, err
	}
	// One connection: this process's writes queue in Go instead of spinning
	// in SQLite's busy handler. busy_timeout still covers other processes.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, logger: logger, busy: opts.BusyTimeout, writes: make(chan *pendingWrite), writerDone: make(chan struct{})}
	go s.writer()
	if err := s.init(ctx, mode); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, mode string) error {
	// The journal mode pragma runs when the connection opens; a change it
	// could not make (another process holds the file) must not pass quietly.
	var got string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&got); err != nil {
		return err
	}
	if !strings.EqualFold(got, mode) {
		return fmt.Errorf("journal mode is %s, want %s (is another process holding the file?)", got, mode)
	}
	if err := migrate(ctx, s.db, migrations.FS, s.logger); err != nil {
		return err
	}
	var err error
	if s.insertRequest, err = s.db.PrepareContext(ctx, insertRequestSQL); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	if s.finishRequest, err = s.db.PrepareContext(ctx, finishRequestSQL); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	if s.insertResult, err = s.db.PrepareContext(ctx, insertResultSQL); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func journalMode(m string) (string, error) {
	switch strings.ToUpper(m) {
	case "", JournalWAL:
		return JournalWAL, nil
	case JournalDelete:
		return JournalDelete, nil
	}
	return "", fmt.Errorf("journal mode %q: want %s or %s", m, JournalWAL, JournalDelete)
}

// dsn builds the connection string. Pragmas go in the DSN so every pooled
// connection gets them, and _txlock=immediate takes the write lock at BEGIN,
// where busy_timeout can wait for it, instead of failing at the first write.
func dsn(path, mode string, busy time.Duration) string {
	sync := "NORMAL"
	if mode == JournalDelete {
		sync = "FULL"
	}
	q := strings.Join([]string{
		"_pragma=journal_mode(" + mode + ")",
		fmt.Sprintf("_pragma=busy_timeout(%d)", max(1, busy.Milliseconds())),
		"_pragma=synchronous(" + sync + ")",
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	}, "&")
	// A file: URI with the path escaped, so '?', '#' and '%' in a directory
	// name reach SQLite as part of the name.
	u := url.URL{Scheme: "file", Path: path, RawQuery: q}
	return u.String()
}

// Close closes the database. In WAL mode the last connection to close
// checkpoints and removes the -wal file.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.writes)
	}
	s.closeMu.Unlock()
	<-s.writerDone
	var errs []error
	for _, st := range []*sql.Stmt{s.insertRequest, s.finishRequest, s.insertResult} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit db: %w", err)
	}
	return nil
}

// Ping checks that the database file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		return fmt.Errorf("ping audit db: %w", err)
	}
	return nil
}

// MarkInterrupted marks every request still 'running' as 'interrupted' and
// returns how many there were, for the caller to log. Call it once at
// start-up, before serving: any such request was cut short by a crash or
// kill of a previous server. Not for a file shared by servers running at
// once (Lambda on EFS): it would mark the others' live requests too.
func (s *Store) MarkInterrupted(ctx context.Context) (int64, error) {
	r, err := s.db.ExecContext(ctx,
		`UPDATE requests SET state = 'interrupted', error = ? WHERE state = 'running'`,
		interruptedError)
	if err != nil {
		return 0, fmt.Errorf("mark interrupted requests: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mark interrupted requests: %w", err)
	}
	return n, nil
}
