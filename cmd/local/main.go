// Command flight-power-server serves the flight-power API on :6302 and
// manages its configuration: serve (default), token, init and check.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, errQuiet) {
		fmt.Fprintln(os.Stderr, "flight-power-server:", err)
	}
	os.Exit(exitCode(err))
}

// errQuiet ends the program with a failure that has already been reported.
var errQuiet = errors.New("failed")

// usageError marks a mistake on the command line or in the configuration;
// the program exits 2 for it.
type usageError struct{ error }

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	default:
		return 1
	}
}

const usage = `usage: flight-power-server [serve] [flags]
       flight-power-server token [--days 30] [--subject NAME] [--role operator|viewer]
       flight-power-server init [--demo]
       flight-power-server check [TOPOLOGY]
       flight-power-server version

Every subcommand reads --config (default /opt/flight/etc/power-server.conf);
flags and FLIGHT_POWER_SERVER_* environment variables override it.
Run 'flight-power-server SUBCOMMAND -h' for its flags.
`

// run is the whole program: it owns flags, construction and shutdown.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	sub := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "serve":
		return runServe(ctx, args, getenv, stderr)
	case "token":
		return runToken(args, getenv, stdout, stderr)
	case "init":
		return runInit(args, getenv, stdout, stderr)
	case "check":
		return runCheck(args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "flight-power-server", version)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown subcommand %q", sub)}
	}
}

// version is stamped by the Makefile with -ldflags -X.
var version = "dev"
