package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/runner"
)

// runCheck validates a topology (and the secret, when a conf is found) and
// exits non-zero on any problem, before any request would meet it.
func runCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := newConfigFlags("check", stderr)
	if err := cfg.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	path := cfg.topology
	switch cfg.fs.NArg() {
	case 0:
	case 1:
		path = cfg.fs.Arg(0)
	default:
		return usageError{fmt.Errorf("check takes at most one topology file, got %q", cfg.fs.Args())}
	}
	problems := 0
	for _, w := range cfg.warnings() {
		fmt.Fprintln(stdout, "warning:", w)
	}
	if cfg.secret != "" {
		if err := handler.CheckSecret([]byte(cfg.secret)); err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", cfg.path, err)
			problems++
		}
	}
	topo, err := runner.LoadFile(path)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return errQuiet
	}
	for _, p := range topo.Check() {
		fmt.Fprintln(stdout, p.Describe(filepath.Clean(path)))
		problems++
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problem(s) found\n", problems)
		return errQuiet
	}
	fmt.Fprintf(stdout, "%s: ok: %d nodes, %d groups, %d platforms\n", path, len(topo.Nodes()), len(topo.Groups()), len(topo.PlatformNames()))
	return nil
}
