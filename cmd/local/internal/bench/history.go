package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/openflighthpc/flight-power/store"
)

// historyTitle is the comment that opens the README's query.
const historyTitle = "-- A node's history"

// historyRuns is how often the query runs in one sqlite3 shell.
const historyRuns = 20

// benchHistory builds an audit log of s.histRows results the way the
// server would (store.Open applies the migrations), fills it with SQL in
// the sqlite3 shell, and times the README's "A node's history" query with
// the shell's .timer.
func benchHistory(ctx context.Context, s *suite) []row {
	metric := fmt.Sprintf("README \"A node's history\" query, audit DB of %s result rows, sqlite3 shell", thousands(seededRows(s.histRows)))
	const target = "<= 10 ms"
	fail := func(err error) []row { return []row{errRow(metric, target, err)} }
	if _, err := exec.LookPath("sqlite3"); err != nil {
		return []row{naRow(metric, target, "sqlite3 shell not installed: apt-get install sqlite3")}
	}
	query, err := readmeQuery(filepath.Join(s.repo, "README.md"), historyTitle)
	if err != nil {
		return fail(err)
	}
	db := filepath.Join(s.dir, "history", "audit.db")
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		return fail(err)
	}
	if err := st.Close(); err != nil {
		return fail(err)
	}
	s.logf("seeding %s results", thousands(s.histRows))
	t0 := time.Now()
	if out, err := sqlite(ctx, db, seedSQL(s.histRows)); err != nil {
		return fail(fmt.Errorf("seed: %w: %s", err, out))
	}
	seeded := time.Since(t0)

	node := "node07"
	if m := regexp.MustCompile(`node\s*=\s*'([^']+)'`).FindStringSubmatch(query); m != nil {
		node = m[1]
	}
	out, err := sqlite(ctx, db, fmt.Sprintf("SELECT count(*) FROM results; SELECT count(*) FROM results WHERE node = '%s';", node))
	if err != nil {
		return fail(err)
	}
	counts := strings.Fields(out)
	if want := seededRows(s.histRows); len(counts) != 2 || counts[0] != strconv.Itoa(want) {
		return fail(fmt.Errorf("seeded DB counts %q, want %d rows", counts, want))
	}
	if out, err := sqlite(ctx, db, query); err != nil || strings.Count(out, "\n") == 0 {
		return fail(fmt.Errorf("the README's query gave no rows for %s: %v", node, err))
	}
	plan, err := sqlite(ctx, db, "EXPLAIN QUERY PLAN "+query)
	if err != nil {
		return fail(err)
	}

	// .timer times each statement inside one shell process, so starting
	// the shell is not counted; the first run also reads the schema.
	script := ".timer on\n.output /dev/null\n" + strings.Repeat(query+"\n", historyRuns)
	out, err = sqlite(ctx, db, script)
	if err != nil {
		return fail(err)
	}
	times, err := timerLines(out)
	if err != nil {
		return fail(err)
	}
	if len(times) != historyRuns {
		return fail(fmt.Errorf("sqlite3 printed %d timings for %d runs", len(times), historyRuns))
	}
	worst := times[0]
	for _, t := range times {
		worst = max(worst, t)
	}
	return []row{{
		metric: metric, value: millis(worst), target: target, verdict: verdict(worst <= 10*time.Millisecond),
		notes: []string{
			fmt.Sprintf("worst of %d runs in one `sqlite3` %s shell with `.timer on` (its resolution is 1 ms): first %s, median %s; page cache warm", historyRuns, sqliteVersion(ctx), millis(times[0]), millis(median(times))),
			fmt.Sprintf("%s rows for %s of %d nodes; seeded in %s; plan: %s", thousands(counts[1]), node, historyNodes, seeded.Round(100*time.Millisecond), oneLine(strings.ReplaceAll(plan, "\n", "; "))),
		},
	}}
}

// readmeQuery returns the body of the ```sql block in the README that
// starts with title.
func readmeQuery(readme, title string) (string, error) {
	b, err := os.ReadFile(readme)
	if err != nil {
		return "", err
	}
	blocks := strings.Split(string(b), "```sql\n")
	for _, blk := range blocks[1:] {
		code, _, ok := strings.Cut(blk, "```")
		if !ok {
			continue
		}
		if strings.HasPrefix(code, title+"\n") {
			return strings.TrimSpace(code), nil
		}
	}
	return "", fmt.Errorf("%s has no ```sql block starting %q", readme, title)
}

// historyNodes is how many nodes the seeded results are spread over.
const historyNodes = 1000

// seededRows is rows rounded down to whole sweeps of historyNodes, at least one.
func seededRows(rows int) int { return max(1, rows/historyNodes) * historyNodes }

// seedSQL fills an empty audit log with rows/1000 sweeps of 1,000 nodes
// (node01 ... node1000), ten minutes apart: mostly status, with power
// actions and a few failures, the variables an ipmi node records, and
// results in the order a sweep writes them, so one node's history is
// spread across the file.
func seedSQL(rows int) string {
	sweeps := seededRows(rows) / historyNodes
	return fmt.Sprintf(`PRAGMA journal_mode = OFF;
PRAGMA cache_size = -300000;
BEGIN;
WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < %[1]d - 1)
INSERT INTO requests (id, time, transport, remote_addr, method, path, query, action, caller, role, node_count, status, duration_ms, state)
SELECT printf('01BENCH%%019d', i),
       strftime('%%Y-%%m-%%d %%H:%%M:%%f', '2026-01-01', '+' || (i * 600) || ' seconds'),
       'http', '10.0.0.' || (i %% 50) || ':' || (40000 + i),
       CASE i %% 10 WHEN 3 THEN 'DELETE' WHEN 7 THEN 'PATCH' ELSE 'GET' END,
       '/', 'nodes=node%%5B01-1000%%5D',
       CASE i %% 10 WHEN 3 THEN 'power_off' WHEN 7 THEN 'power_on' ELSE 'status' END,
       'user' || (i %% 7), 'operator', %[2]d, 200, 2300, 'done'
FROM r;
WITH RECURSIVE n(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM n WHERE j < %[2]d)
INSERT INTO results (request_id, node, platform, action, started_at, duration_ms, exit_code, state,
                     success, missing, ran, timed_out, stdout, stdout_truncated, stderr, stderr_truncated, variables, error)
SELECT q.id, printf('node%%02d', n.j), 'ipmi', q.action,
       strftime('%%Y-%%m-%%d %%H:%%M:%%f', q.time, '+' || (n.j * 2) || ' seconds'),
       200 + (n.j * 7919 + q.rowid) %% 300,
       CASE WHEN (n.j + q.rowid) %% 50 = 0 THEN 1 WHEN q.action = 'status' AND n.j %% 9 = 0 THEN 111 ELSE 0 END,
       CASE WHEN (n.j + q.rowid) %% 50 = 0 THEN (CASE q.action WHEN 'status' THEN 'unknown' ELSE 'failed' END)
            WHEN q.action = 'status' THEN (CASE WHEN n.j %% 9 = 0 THEN 'off' ELSE 'on' END)
            ELSE 'ok' END,
       (n.j + q.rowid) %% 50 <> 0, 0, 1, 0,
       CASE WHEN q.action <> 'status' THEN 'Chassis Power Control: Up/On' END, 0,
       CASE WHEN (n.j + q.rowid) %% 50 = 0 THEN 'Error: Unable to establish IPMI v2 / RMCP+ session' END, 0,
       '{"ipmi_host":"' || printf('node%%02d', n.j) || '-bmc","ipmi_password":"[redacted]","ipmi_port":"623","ipmi_username":"admin","name":"' || printf('node%%02d', n.j) || '"}',
       CASE WHEN (n.j + q.rowid) %% 50 = 0 THEN 'exit 1: Error: Unable to establish IPMI v2 / RMCP+ session' END
FROM requests AS q, n
ORDER BY q.rowid, n.j;
COMMIT;
PRAGMA journal_mode = WAL;
`, sweeps, historyNodes)
}

// sqlite runs script in the sqlite3 shell on db and returns its output.
func sqlite(ctx context.Context, db, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "sqlite3", "-cmd", ".timeout 5000", db)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("sqlite3: %w: %s", err, oneLine(string(out)))
	}
	if strings.Contains(string(out), "Parse error") || strings.Contains(string(out), "Runtime error") {
		return string(out), errors.New(oneLine(string(out)))
	}
	return string(out), nil
}

var timerRE = regexp.MustCompile(`Run Time: real ([0-9.]+)`)

// timerLines reads the wall times of the shell's .timer lines.
func timerLines(out string) ([]time.Duration, error) {
	var ts []time.Duration
	for _, m := range timerRE.FindAllStringSubmatch(out, -1) {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return nil, err
		}
		ts = append(ts, time.Duration(f*float64(time.Second)))
	}
	return ts, nil
}

func sqliteVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "sqlite3", "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// thousands formats n (an int or its decimal string) with commas.
func thousands[T int | string](n T) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
