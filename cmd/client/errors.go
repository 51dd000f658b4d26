package main

import (
	"errors"
	"fmt"
	"io"
)

// Exit statuses, documented in the usage text and the README.
const (
	exitOK          = 0
	exitNodesFailed = 1   // a node failed, is unknown or is not in the topology
	exitUsage       = 2   // usage or config error
	exitServer      = 3   // server unreachable, token rejected or server error
	exitInterrupted = 130 // Ctrl-C or SIGTERM, as a shell reports SIGINT
)

// exitError is an error with the exit status it ends the program with.
// Its message is one line that says what to do next; a nil err means the
// outcome was already reported (the table and summary of failed nodes).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func serverErrorf(format string, args ...any) error {
	return &exitError{code: exitServer, err: fmt.Errorf(format, args...)}
}

// errNodesFailed ends a run whose table already shows what failed.
var errNodesFailed = &exitError{code: exitNodesFailed}

// report writes err's one-line message, if it has one, and returns the
// exit status for it.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Every error run returns should be classified; one that is not is
		// still shown, and counts as a server-side failure.
		fmt.Fprintln(stderr, "flight-power:", err)
		return exitServer
	}
	if ee.err != nil {
		fmt.Fprintln(stderr, "flight-power:", ee.err)
	}
	return ee.code
}
