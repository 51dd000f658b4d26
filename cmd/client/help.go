package main

import (
	"fmt"
	"strings"
)

// runHelp prints the usage, or one command's.
func runHelp(e env, args []string) error {
	switch len(args) {
	case 0:
		fmt.Fprint(e.stdout, usage)
		return nil
	case 1:
	default:
		return usageErrorf("help takes at most one command, got %q", args)
	}
	switch name := args[0]; name {
	case "list":
		fmt.Fprint(e.stdout, listUsage)
	case "status", "on", "off", "restart":
		fmt.Fprint(e.stdout, powerUsage(name))
	case "version":
		fmt.Fprintln(e.stdout, "usage: flight-power version [--json]")
	case "help":
		fmt.Fprint(e.stdout, usage)
	default:
		return usageErrorf("no command %q: the commands are %s", name, strings.Join(commandNames(), ", "))
	}
	return nil
}
