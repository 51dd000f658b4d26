package handler

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes, each answered with exactly one HTTP status (see statusOf).
const (
	EINVALID      = "invalid"      // bad syntax in the request
	EUNAUTHORIZED = "unauthorized" // missing, invalid or expired token
	EFORBIDDEN    = "forbidden"    // the token's role is too low
	ENOTFOUND     = "not_found"    // unknown route
	EMETHOD       = "method"       // known route, wrong method
	ETOOLARGE     = "too_large"    // query, headers or body over the limit
	EUNAVAILABLE  = "unavailable"  // the audit log cannot be written: nothing ran
	EINTERNAL     = "internal"     // a bug; details go to the log, not the user
)

var statusOf = map[string]int{
	EINVALID:      http.StatusBadRequest,
	EUNAUTHORIZED: http.StatusUnauthorized,
	EFORBIDDEN:    http.StatusForbidden,
	ENOTFOUND:     http.StatusNotFound,
	EMETHOD:       http.StatusMethodNotAllowed,
	ETOOLARGE:     http.StatusRequestEntityTooLarge,
	EUNAVAILABLE:  http.StatusServiceUnavailable,
	EINTERNAL:     http.StatusInternalServerError,
}

// Error is an error a client is shown: a code and a message that says what
// to do next.
type Error struct {
	Code    string
	Message string
	Allow   string // methods allowed, for EMETHOD
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorStatus maps an error to its HTTP status; errors that are not *Error
// are internal.
func ErrorStatus(err error) int {
	var e *Error
	if errors.As(err, &e) {
		if s, ok := statusOf[e.Code]; ok {
			return s
		}
	}
	return http.StatusInternalServerError
}

// ErrorMessage is what a user is shown for err: the message of an *Error,
// a generic sentence otherwise (the cause goes to the log).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error: see the server log"
}
