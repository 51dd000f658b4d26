package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/runner"
	"github.com/openflighthpc/flight-power/store"
)

// envPrefix starts every variable this function reads. Commands never see
// them.
const envPrefix = "FLIGHT_POWER_"

// The environment variables, named after the server conf's keys.
const (
	envSecret         = envPrefix + "JWT_SHARED_SECRET"
	envTopology       = envPrefix + "TOPOLOGY_CONFIG"
	envAuditDB        = envPrefix + "AUDIT_DB"
	envJournalMode    = envPrefix + "AUDIT_JOURNAL_MODE"
	envCommandTimeout = envPrefix + "COMMAND_TIMEOUT"
	envWorkers        = envPrefix + "NUM_WORKER_COMMANDS"
	envScriptsDir     = envPrefix + "SCRIPTS_DIR"
	envLogLevel       = envPrefix + "LOG_LEVEL"
	envRequestTimeout = envPrefix + "REQUEST_TIMEOUT"
	envFinishMargin   = envPrefix + "FINISH_MARGIN"
)

// Defaults.
const (
	defaultTopologyName = "topology.yaml" // packaged beside bootstrap
	defaultAuditDB      = "/tmp/flight-power/audit.db"
	// localDir is the only path private to one execution environment; a
	// database anywhere else (an EFS mount) may be shared by instances.
	localDir = "/tmp"
	// defaultRequestTimeout keeps a request inside API Gateway's 30 s
	// integration limit, which ends the call whatever the function does.
	defaultRequestTimeout = 29 * time.Second
	// defaultFinishMargin is kept back from the deadline to kill what still
	// runs (SIGTERM, then SIGKILL 250 ms later), record every node and answer.
	defaultFinishMargin   = 2 * time.Second
	defaultCommandTimeout = 25 * time.Second
	defaultWorkers        = 50
)

// config is the function's configuration, read from the environment once
// at INIT.
type config struct {
	secret         string
	topology       string
	auditDB        string
	journalMode    string
	auditShared    bool // the database is not under /tmp: never mark other instances' requests interrupted
	commandTimeout time.Duration
	workers        int
	scriptsDir     string
	logLevel       slog.Level
	requestTimeout time.Duration
	finishMargin   time.Duration
}

// loadConfig reads FLIGHT_POWER_* through getenv. exeDir is the folder of
// bootstrap, where the packaged topology lives. An error names the variable.
func loadConfig(getenv func(string) string, exeDir string) (*config, error) {
	c := &config{
		secret:         getenv(envSecret),
		topology:       getenv(envTopology),
		auditDB:        getenv(envAuditDB),
		scriptsDir:     getenv(envScriptsDir),
		commandTimeout: defaultCommandTimeout,
		workers:        defaultWorkers,
		requestTimeout: defaultRequestTimeout,
		finishMargin:   defaultFinishMargin,
	}
	if c.secret == "" {
		return nil, fmt.Errorf("%s is not set: the template resolves it from Secrets Manager (parameter JwtSecretId)", envSecret)
	}
	if err := handler.CheckSecret([]byte(c.secret)); err != nil {
		return nil, fmt.Errorf("%s: %w", envSecret, err)
	}
	if c.topology == "" {
		c.topology = filepath.Join(exeDir, defaultTopologyName)
	}
	if c.auditDB == "" {
		c.auditDB = defaultAuditDB
	}
	abs, err := filepath.Abs(c.auditDB)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envAuditDB, err)
	}
	c.auditDB = abs
	c.auditShared = abs != localDir && !strings.HasPrefix(abs, localDir+"/")

	switch m := strings.ToUpper(getenv(envJournalMode)); m {
	case "":
		// WAL needs shared memory, which network filesystems lack.
		c.journalMode = store.JournalWAL
		if c.auditShared {
			c.journalMode = store.JournalDelete
		}
	case store.JournalWAL, store.JournalDelete:
		c.journalMode = m
	default:
		return nil, fmt.Errorf("%s=%q: want %s or %s (%s for EFS)", envJournalMode, m, store.JournalWAL, store.JournalDelete, store.JournalDelete)
	}

	durations := []struct {
		name string
		dst  *time.Duration
		zero bool // 0 is allowed
	}{
		{envCommandTimeout, &c.commandTimeout, false},
		{envRequestTimeout, &c.requestTimeout, false},
		{envFinishMargin, &c.finishMargin, true},
	}
	for _, d := range durations {
		v := getenv(d.name)
		if v == "" {
			continue
		}
		parsed, err := time.ParseDuration(v)
		if err != nil || parsed < 0 || (parsed == 0 && !d.zero) {
			return nil, fmt.Errorf("%s=%q: want a positive duration such as 20s or 1m", d.name, v)
		}
		*d.dst = parsed
	}
	if v := getenv(envWorkers); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: want a whole number of at least 1", envWorkers, v)
		}
		c.workers = n
	}
	if c.scriptsDir == "" {
		c.scriptsDir = filepath.Dir(c.topology)
	}
	if v := getenv(envLogLevel); v != "" {
		if err := c.logLevel.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("%s=%q: want debug, info, warn or error", envLogLevel, v)
		}
	}
	return c, nil
}

// commandEnv is the environment commands start from: the function's own,
// which carries the AWS credentials and region Lambda provides (so the aws
// CLI works), without this function's configuration, without anything that
// holds the secret, and without the runtime API address (a command must not
// be able to take the next invocation).
func commandEnv(environ []string, secret string) []string {
	own := func(k string) bool {
		return strings.HasPrefix(strings.ToUpper(k), envPrefix) || k == "AWS_LAMBDA_RUNTIME_API"
	}
	// Lambda sets no HOME; the aws CLI keeps its caches under it, and /tmp
	// is the only writable place.
	return runner.CommandEnv(environ, secret, own, "PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin", "HOME=/tmp")
}
