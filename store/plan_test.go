package store_test

import (
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/store"
)

// TestQueryPlansUseIndexes checks that the queries the README offers admins
// are index searches, not table scans or sorts, so they stay fast on a
// large audit log.
func TestQueryPlansUseIndexes(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, store.Options{})
	writeRequest(t, s, "r1", 3)
	db := rawDB(t, path)

	for _, c := range []struct {
		name  string
		query string
		want  []string // each must appear in the plan
	}{
		{"a node's history",
			"SELECT * FROM results WHERE node = 'node07' ORDER BY started_at DESC LIMIT 50",
			[]string{"SEARCH results USING INDEX results_node_time (node=?)"}},
		{"a node's history from the view",
			"SELECT * FROM audit WHERE node = 'node07' ORDER BY time DESC LIMIT 50",
			[]string{"USING INDEX results_node_time (node=?)", "sqlite_autoindex_requests_1 (id=?)"}},
		{"who powered off node07",
			"SELECT time, caller, remote_addr FROM audit WHERE node = 'node07' AND action = 'power_off' ORDER BY time DESC",
			[]string{"USING INDEX results_node_action_time (node=? AND action=?)"}},
		{"everything that failed today",
			"SELECT * FROM audit WHERE time >= date('now') AND success = 0",
			[]string{"USING INDEX results_failed_time (started_at>?)"}},
		{"requests in the last hour",
			"SELECT * FROM requests WHERE time >= datetime('now', '-1 hour')",
			[]string{"USING INDEX requests_time (time>?)"}},
		{"one caller's week",
			"SELECT * FROM requests WHERE caller = 'alice' AND time >= date('now', '-7 days')",
			[]string{"USING INDEX requests_caller_time (caller=? AND time>?)"}},
		{"a request's results",
			"SELECT * FROM results WHERE request_id = 'r1'",
			[]string{"USING INDEX results_request (request_id=?)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var plan []string
			for _, row := range queryRows(t, db, "EXPLAIN QUERY PLAN "+c.query) {
				plan = append(plan, row["detail"].(string))
			}
			got := strings.Join(plan, "\n")
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("plan:\n%s\nwant it to contain %q", got, w)
				}
			}
			for _, bad := range []string{"SCAN", "TEMP B-TREE"} {
				if strings.Contains(got, bad) {
					t.Errorf("plan:\n%s\nwant no %q", got, bad)
				}
			}
		})
	}
}
