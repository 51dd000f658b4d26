package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// runToken prints a signed client token.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := newConfigFlags("token", stderr)
	days := cfg.fs.Float64("days", 30, "days until the token expires")
	subject := cfg.fs.String("subject", "", "who the token is for, recorded as the caller in the audit log (default: $USER)")
	role := cfg.fs.String("role", handler.RoleOperator, "operator (list, status, on, off, restart) or viewer (list, status)")
	if err := cfg.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.fs.NArg() > 0 {
		return usageError{fmt.Errorf("token takes no arguments, got %q", cfg.fs.Args())}
	}
	if cfg.secret == "" {
		return usageError{fmt.Errorf("no jwt_shared_secret in %s: run flight-power-server init first, or pass --config", cfg.path)}
	}
	if *days <= 0 {
		return usageError{fmt.Errorf("--days must be positive, got %v", *days)}
	}
	if !handler.ValidRole(*role) || *role == "" {
		return usageError{fmt.Errorf("--role %q: use %s or %s", *role, handler.RoleOperator, handler.RoleViewer)}
	}
	sub := *subject
	if sub == "" {
		sub = getenv("USER")
	}
	ttl := time.Duration(*days * float64(24*time.Hour))
	tok, err := handler.MintToken([]byte(cfg.secret), sub, *role, ttl, time.Now())
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
