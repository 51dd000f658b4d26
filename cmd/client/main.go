// Command flight-power is the flight-power client: it lists a server's nodes
// and groups and asks it for the power status of nodes, or to power them on,
// off or restart them. It speaks the original OpenFlight power-server's
// routes, so it works against both servers.
package main

import (
	"context"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(report(err, os.Stderr))
}
