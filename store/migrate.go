package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// migrationName is NNNN_name.sql; the number is the schema version.
var migrationName = regexp.MustCompile(`^([0-9]+)_([a-z0-9_]+)\.sql$`)

type migration struct {
	version int64
	name    string // file name
	sql     string
}

// readMigrations lists the numbered .sql files at the root of fsys in
// version order. A file that is not numbered, or a number used twice, is an
// error: the binary was built wrong.
func readMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		m := migrationName.FindStringSubmatch(path.Base(name))
		if m == nil {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", name)
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %s: version must be a positive number", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migration files %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies, in order, each migration in fsys that db has not seen,
// each in its own transaction, and records it in schema_migrations. It
// refuses a database whose schema is newer than any file: an older binary
// must not write to a schema it does not know.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, logger *slog.Logger) error {
	ms, err := readMigrations(fsys)
	if err != nil {
		return err
	}
	var known int64
	if len(ms) > 0 {
		known = ms[len(ms)-1].version
	}

	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current.Int64 > known {
		return fmt.Errorf("audit db schema version %d is newer than this binary knows (%d): upgrade flight-power", current.Int64, known)
	}

	for _, m := range ms {
		applied, err := apply(ctx, db, m)
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		if applied {
			logger.Info("applied migration", "version", m.version, "name", m.name)
		}
	}
	return nil
}

// apply runs m in one transaction unless it is already recorded. The check
// is inside the transaction, which takes the write lock at BEGIN, so two
// processes starting on one file do not both apply it.
func apply(ctx context.Context, db *sql.DB, m migration) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, formatTime(time.Now())); err != nil {
		return false, err
	}
	return true, tx.Commit()
}
