package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Verdicts, the last column of the table.
const (
	verdictOK    = "ok"
	verdictMiss  = "MISS"
	verdictNA    = "n/a"
	verdictError = "error"
	verdictInfo  = "-" // a reference row without a target of its own
)

// row is one line of the table.
type row struct {
	metric   string
	value    string
	target   string
	baseline string
	ratio    string
	verdict  string
	notes    []string // printed under the table
}

// naRow is a row that could not run for a missing prerequisite.
func naRow(metric, target, reason string) row {
	return row{metric: metric, value: "n/a (" + reason + ")", target: target, verdict: verdictNA}
}

// errRow is a row that should have run and failed.
func errRow(metric, target string, err error) row {
	return row{metric: metric, value: "error: " + oneLine(err.Error()), target: target, verdict: verdictError}
}

func verdict(ok bool) string {
	if ok {
		return verdictOK
	}
	return verdictMiss
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// printTable writes rows as a Markdown table, padded so it reads in a
// terminal too.
func printTable(w io.Writer, rows []row) {
	head := []string{"metric", "value", "target", "baseline", "ratio", "result"}
	cells := [][]string{head}
	for _, r := range rows {
		cells = append(cells, []string{r.metric, r.value, r.target, r.baseline, r.ratio, r.verdict})
	}
	width := make([]int, len(head))
	for _, c := range cells {
		for i, v := range c {
			width[i] = max(width[i], utf8.RuneCountInString(v))
		}
	}
	line := func(c []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, v := range c {
			b.WriteString(" " + v + strings.Repeat(" ", width[i]-utf8.RuneCountInString(v)) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(cells[0])
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, c := range cells[1:] {
		line(c)
	}
}

// machine is what BENCHMARKS.md records about where the numbers came from.
type machine struct {
	when       time.Time
	cpus       int
	cpuModel   string
	kernel     string
	goVersion  string
	commit     string
	loadBefore string
	loadAfter  string
}

func readMachine() machine {
	m := machine{
		when:       time.Now().UTC(),
		cpus:       runtime.NumCPU(),
		cpuModel:   cpuModel(),
		goVersion:  runtime.Version(),
		loadBefore: loadAverage(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
	}
	return m
}

func (m machine) print(w io.Writer, took time.Duration) {
	fmt.Fprintf(w, "flight-power benchmarks, %s, commit %s, %s\n", m.when.Format("2006-01-02 15:04 UTC"), orUnknown(m.commit), took.Round(time.Second))
	fmt.Fprintf(w, "machine: %d CPUs, %s, Linux %s, %s %s/%s\n", m.cpus, orUnknown(m.cpuModel), orUnknown(m.kernel), m.goVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "load average (1, 5, 15 min): %s before, %s after\n", m.loadBefore, m.loadAfter)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// median of ds; ds must not be empty.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// seconds formats d as seconds with two decimals.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// spread lists every run, for the notes.
func spread(ds []time.Duration) string {
	var p []string
	for _, d := range ds {
		p = append(p, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(p, ", ") + " s"
}

func ratio(a, b float64) string { return fmt.Sprintf("%.2f x", a/b) }
