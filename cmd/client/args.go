package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Names of the settings that config.yaml, FLIGHT_POWER_* variables and
// flags share.
const (
	keyConfig  = "config"
	keyBaseURL = "base_url"
	keyToken   = "jwt_token"
	keyTimeout = "timeout"

	defaultTimeout = 5 * time.Minute
)

// splitCommand finds the command among args, which may follow flags
// (flight-power --config x.yaml status node01), and returns the other
// arguments in order.
func splitCommand(args []string) (name string, rest []string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return "", nil, false
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			flagName, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !hasValue && takesValue(flagName) {
				i++ // skip the flag's value
			}
			continue
		}
		rest = append(append(rest, args[:i]...), args[i+1:]...)
		return a, rest, true
	}
	return "", nil, false
}

// takesValue reports whether a flag any command accepts needs a value.
func takesValue(name string) bool {
	switch name {
	case keyConfig, keyBaseURL, keyToken, keyTimeout:
		return true
	}
	return false
}

// newFlagSet returns a quiet flag set: parse errors come back as errors
// (reported in one line by the caller) instead of being printed with the
// whole flag list.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// serverFlags are the flags of every command that talks to the server.
// Only json lives here for good: the connection settings are copied into
// the config once env and the file have been read (see loadConfig).
type serverFlags struct {
	json bool
}

func addServerFlags(fs *flag.FlagSet) *serverFlags {
	sf := &serverFlags{}
	fs.BoolVar(&sf.json, "json", false, "print the results as JSON")
	fs.String(keyConfig, "", "config file")
	fs.String(keyBaseURL, "", "server URL")
	fs.String(keyToken, "", "token")
	fs.Var(newDuration(new(time.Duration), defaultTimeout), keyTimeout, "how long to wait for the server")
	return sf
}

// duration is a flag.Value for durations whose errors say what is wanted
// (the flag package's say only "parse error").
type duration struct{ d *time.Duration }

func newDuration(p *time.Duration, value time.Duration) duration {
	*p = value
	return duration{p}
}

func (d duration) String() string {
	if d.d == nil {
		return ""
	}
	return d.d.String()
}

func (d duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 90s or 5m, got %q", s)
	}
	*d.d = v
	return nil
}

// parseArgs parses flags wherever they stand among the positional
// arguments (Go's flag package stops at the first positional one), so
// that "status node01 --json" and "status --json node01" agree.
// Everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErrorf("%s: %v (run flight-power help %s)", fs.Name(), err, fs.Name())
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
