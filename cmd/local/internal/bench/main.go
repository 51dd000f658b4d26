// Command bench measures flight-power against the targets of issue 6 and
// prints one table: metric, value, target, baseline, ratio.
//
// It drives the built binaries over real HTTP, the real sqlite3 shell, wrk,
// ipmi_sim with ipmitool and the Lambda Runtime Interface Emulator. Every
// comparison runs its baseline in the same run, interleaved with the
// measured runs where it can be, because the machines it runs on are shared
// and noisy. A row whose prerequisites are missing prints "n/a (reason)".
//
// It is not a test: `make bench` runs it from the repository root.
//
//	go run ./cmd/local/internal/bench [-only fanout,exit,nodes,history,ipmi,lambda]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// suite is what every benchmark needs: where the binaries and docs are,
// a scratch folder, and where progress goes.
type suite struct {
	server   string // the built flight-power-server
	repo     string // repository root: README.md, cmd/local/etc, cmd/lambda
	dir      string // scratch folder, removed at the end unless -keep
	trials   int    // timed runs of each side of a comparison
	wrkFor   time.Duration
	histRows int
	progress io.Writer
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.progress, "  "+format+"\n", args...)
}

// benchmark is one group of rows.
type benchmark struct {
	name string
	run  func(context.Context, *suite) []row
}

var benchmarks = []benchmark{
	{"fanout", benchFanout},
	{"exit", benchExit},
	{"nodes", benchNodes},
	{"history", benchHistory},
	{"ipmi", benchIPMI},
	{"lambda", benchLambda},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &suite{progress: stderr}
	var only string
	var keep bool
	fs.StringVar(&s.server, "server", "bin/flight-power-server", "the built flight-power-server")
	fs.StringVar(&s.repo, "repo", ".", "repository root (README.md, cmd/local/etc, cmd/lambda)")
	fs.IntVar(&s.trials, "trials", 3, "timed runs of each side of a comparison (the fast ones run more)")
	fs.DurationVar(&s.wrkFor, "wrk-duration", 10*time.Second, "how long wrk loads each server")
	fs.IntVar(&s.histRows, "history-rows", 1_000_000, "result rows in the audit DB of the history query")
	fs.StringVar(&only, "only", "", "comma-separated benchmarks to run: "+names())
	fs.BoolVar(&keep, "keep", false, "keep the scratch folder")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench takes no arguments, got %q", fs.Args())
	}
	selected := benchmarks
	if only != "" {
		selected = nil
		for _, n := range strings.Split(only, ",") {
			i := slices.IndexFunc(benchmarks, func(b benchmark) bool { return b.name == strings.TrimSpace(n) })
			if i < 0 {
				return fmt.Errorf("-only: unknown benchmark %q (have %s)", n, names())
			}
			selected = append(selected, benchmarks[i])
		}
	}
	if _, err := os.Stat(s.server); err != nil {
		return fmt.Errorf("server binary: %w (run make build first)", err)
	}
	dir, err := os.MkdirTemp("", "flight-power-bench")
	if err != nil {
		return err
	}
	s.dir = dir
	if keep {
		fmt.Fprintln(stderr, "scratch folder:", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	m := readMachine()
	start := time.Now()
	var rows []row
	for _, b := range selected {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "bench %s\n", b.name)
		t0 := time.Now()
		rows = append(rows, b.run(ctx, s)...)
		fmt.Fprintf(stderr, "  (%s)\n", time.Since(t0).Round(100*time.Millisecond))
	}
	m.loadAfter = loadAverage()

	fmt.Fprintln(stdout)
	m.print(stdout, time.Since(start))
	fmt.Fprintln(stdout)
	printTable(stdout, rows)
	fmt.Fprintln(stdout)
	for _, r := range rows {
		for _, n := range r.notes {
			fmt.Fprintf(stdout, "- %s: %s\n", r.metric, n)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var failed []string
	for _, r := range rows {
		if r.verdict == verdictError {
			failed = append(failed, r.metric)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d benchmark(s) could not run: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

func names() string {
	var n []string
	for _, b := range benchmarks {
		n = append(n, b.name)
	}
	return strings.Join(n, ",")
}
