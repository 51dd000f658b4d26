//go:build !linux

package runner

import "errors"

// waitExited is Linux-only; elsewhere the runner reaps first and kills the
// group's leftovers on a best-effort basis.
func waitExited(int) error { return errors.ErrUnsupported }
