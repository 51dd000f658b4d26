package main

import (
	"errors"
	"flag"
	"fmt"
)

// runVersion prints the client's version.
func runVersion(e env, args []string) error {
	fs := newFlagSet("version")
	asJSON := fs.Bool("json", false, "print {\"version\": ...}")
	rest, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(e.stdout, "usage: flight-power version [--json]")
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("version takes no arguments, got %q", rest)
	}
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Version string `json:"version"`
		}{version})
	}
	fmt.Fprintln(e.stdout, "flight-power", version)
	return nil
}
