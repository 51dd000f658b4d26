// Package migrations holds the audit log's schema as numbered, forward-only
// .sql files (NNNN_name.sql), embedded so the binary carries its own schema.
//
// The store package applies each file once, in order, in its own
// transaction. A released file is never edited: a change is a new file with
// the next number.
package migrations

import "embed"

// FS holds the numbered, forward-only .sql files, applied in order by the
// store's migration runner.
//
//go:embed *.sql
var FS embed.FS
