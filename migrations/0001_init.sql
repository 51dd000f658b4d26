-- 0001_init: the audit log, written by flight-power, read by admins with the
-- stock sqlite3 shell (sqlite3 -cmd '.timeout 5000' /path/to/audit.db).
--
-- Conventions, so one-line queries work:
--   * Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS', SQLite's own format:
--     time >= date('now') and time >= datetime('now', '-1 hour') compare
--     correctly as text.
--   * An absent value is NULL, never '': error IS NOT NULL finds the errors.
--   * Flags are 0 or 1.
--   * No STRICT tables and no JSON functions in constraints, so the older
--     sqlite3 shells on EL8 and Debian can still read and prune the file.

-- One row per request that reached the handler, rejected ones included.
-- Written with state 'running' before any command starts, updated to 'done'
-- when answered; rows still 'running' at the next start become 'interrupted'.
CREATE TABLE requests (
    id           TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),  -- handler-generated, sortable; the X-Request-Id header
    time         TEXT NOT NULL                                -- when the request arrived, UTC
                 CHECK (time GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]'),
    transport    TEXT,                                        -- 'http' or 'lambda'
    transport_id TEXT,                                        -- e.g. the Lambda request id
    remote_addr  TEXT,
    method       TEXT,
    path         TEXT,
    query        TEXT,                                        -- raw query string, capped at 4096 bytes
    action       TEXT,                                        -- status, power_on, power_off, restart, list_nodes, list_groups; NULL when rejected before routing
    caller       TEXT,                                        -- the token's sub; NULL when not authenticated
    role         TEXT,
    node_count   INTEGER NOT NULL DEFAULT 0,                  -- nodes targeted
    status       INTEGER,                                     -- HTTP status answered; NULL while running or when interrupted
    error        TEXT,
    duration_ms  INTEGER,                                     -- NULL while running or when interrupted
    state        TEXT NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'done', 'interrupted'))
);

-- Requests by time ("what happened in the last hour").
CREATE INDEX requests_time ON requests (time);
-- One caller's requests ("what did alice do this week").
CREATE INDEX requests_caller_time ON requests (caller, time);

-- One row per node command of a request.
CREATE TABLE results (
    id               INTEGER PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES requests (id),
    node             TEXT,
    platform         TEXT,                                    -- 'missing' when the node or its platform is unknown
    action           TEXT,                                    -- status, power_on, power_off, restart
    started_at       TEXT NOT NULL                            -- when the command started (or was skipped), UTC
                     CHECK (started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]'),
    duration_ms      INTEGER NOT NULL,
    exit_code        INTEGER,                                 -- NULL when the command did not exit on its own (not run, killed)
    state            TEXT,                                    -- on, off, unknown, ok, failed, missing, or a platform-defined state
    success          INTEGER NOT NULL CHECK (success IN (0, 1)),
    missing          INTEGER NOT NULL CHECK (missing IN (0, 1)),          -- the node is not in the topology
    ran              INTEGER NOT NULL CHECK (ran IN (0, 1)),              -- the command was started
    timed_out        INTEGER NOT NULL CHECK (timed_out IN (0, 1)),
    stdout           TEXT,
    stdout_truncated INTEGER NOT NULL CHECK (stdout_truncated IN (0, 1)),
    stderr           TEXT,
    stderr_truncated INTEGER NOT NULL CHECK (stderr_truncated IN (0, 1)),
    variables        TEXT,                                    -- JSON object of the variables given, secrets redacted
    error            TEXT                                     -- short reason when success = 0
);

-- A node's history: WHERE node = ? ORDER BY started_at DESC LIMIT 50.
CREATE INDEX results_node_time ON results (node, started_at);
-- One action on one node ("who powered off node07"), newest first, without
-- walking every status check the node ever had.
CREATE INDEX results_node_action_time ON results (node, action, started_at);
-- A request's results, and the join in the audit view.
CREATE INDEX results_request ON results (request_id);
-- Failures by time ("everything that failed today"): only failed rows are
-- indexed, so it stays small. Queries must say success = 0 to use it.
CREATE INDEX results_failed_time ON results (started_at) WHERE success = 0;

-- One row per node command with the request it belongs to. time is when the
-- command started, so WHERE node = ? ORDER BY time DESC and
-- WHERE time >= date('now') AND success = 0 use the indexes above.
CREATE VIEW audit AS
SELECT
    x.started_at  AS time,
    r.caller      AS caller,
    r.remote_addr AS remote_addr,
    r.transport   AS transport,
    x.node        AS node,
    x.platform    AS platform,
    x.action      AS action,
    x.state       AS state,
    x.success     AS success,
    x.exit_code   AS exit_code,
    x.duration_ms AS duration_ms,
    x.error       AS error,
    x.request_id  AS request_id
FROM results AS x
JOIN requests AS r ON r.id = x.request_id;
