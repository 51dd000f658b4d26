package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is stamped by the Makefile with -ldflags -X.
var version = "dev"

// env is what every command is given: the process's environment and
// output streams, so that nothing below run reaches for os directly.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program: it owns signals and picks the command.
func run(ctx context.Context, args []string, getenv func(string) string, _ io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}

	name, rest, ok := splitCommand(args)
	if !ok {
		for _, a := range args {
			if a == "-h" || a == "-help" || a == "--help" {
				fmt.Fprint(stdout, usage)
				return nil
			}
		}
		fmt.Fprint(stderr, usage)
		return usageErrorf("missing command: run flight-power help")
	}
	switch name {
	case "list":
		return runList(ctx, e, rest)
	case "status", "on", "off", "restart":
		return runPower(ctx, e, name, rest)
	case "version":
		return runVersion(e, rest)
	case "help":
		return runHelp(e, rest)
	default:
		return usageErrorf("unknown command %q: the commands are %s (run flight-power help)", name, strings.Join(commandNames(), ", "))
	}
}

func commandNames() []string {
	return []string{"list", "status", "on", "off", "restart", "version", "help"}
}

const usage = `usage: flight-power COMMAND [TARGETS...] [flags]

commands:
  list [--groups [--verbose]]      the server's nodes (name, platform), or its groups
  status TARGETS... [--groups]     power state of nodes: On, Off or Unknown
  on TARGETS... [--groups]         power nodes on
  off TARGETS... [--groups]        power nodes off
  restart TARGETS... [--groups]    restart nodes
  version                          print the client's version
  help [COMMAND]                   this text, or a command's

TARGETS are node hostlists (node01 'node[01-10]' 'rack[1-2]n[01-04]', quoted
from the shell), or group names with --groups. Flags go before or after them.

flags of the commands that talk to the server:
  --json               print the results as JSON on stdout
  --timeout DURATION   give up when the server has not answered (default 5m)
  --config PATH        config file; default $FLIGHT_POWER_CONFIG, then
                       ~/.config/flight-power/config.yaml, then
                       /opt/flight/opt/power-client/etc/config.yaml
  --base_url URL       the server, e.g. http://localhost:6302
                       (env FLIGHT_POWER_BASE_URL, config base_url)
  --jwt_token TOKEN    the token flight-power-server token minted (env
                       FLIGHT_POWER_JWT_TOKEN, config jwt_token); on the
                       command line every user can see it in ps

exit status: 0 every node succeeded; 1 a node failed, is unknown or is not
in the topology; 2 usage or config error; 3 server unreachable, token
rejected or server error; 130 interrupted.
`
