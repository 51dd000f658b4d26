package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openflighthpc/flight-power/runner"
	"github.com/peterbourgon/ff/v3"
)

// Defaults, matching the original power-server's paths.
const (
	defaultConfigPath   = "/opt/flight/etc/power-server.conf"
	defaultTopologyPath = "/opt/flight/etc/power-server/topology.yaml"
	defaultAuditDB      = "/opt/flight/var/lib/power-server/audit.db"
	envPrefix           = "FLIGHT_POWER_SERVER"
)

// config is the server configuration: one flag per key of the conf file.
type config struct {
	path           string
	secret         string
	topology       string
	auditDB        string
	auditJournal   string
	listen         string
	workers        int
	commandTimeout time.Duration
	shutdownGrace  time.Duration
	scriptsDir     string
	logLevel       string
	tlsCert        string
	tlsKey         string

	// readHeaderTimeout is how long a client may take over its request
	// line and headers before the connection is closed (slowloris).
	readHeaderTimeout time.Duration

	fs      *flag.FlagSet
	unknown []string // keys in the conf file that no flag knows
}

// pathKeys are resolved against the conf file's folder when relative there.
var pathKeys = []string{"topology_config", "audit_db", "scripts_dir", "tls_cert", "tls_key"}

// secretFlag may not be given on the command line, where every user of the
// machine can read it.
const secretFlag = "jwt_shared_secret"

func newConfigFlags(name string, stderr io.Writer) *config {
	c := &config{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := c.fs
	fs.SetOutput(stderr)
	fs.StringVar(&c.path, "config", defaultConfigPath, "server conf file (key=value lines)")
	fs.StringVar(&c.secret, secretFlag, "", "HS256 secret, at least 32 bytes (conf file or env only, never argv)")
	fs.StringVar(&c.topology, "topology_config", defaultTopologyPath, "topology YAML file")
	fs.StringVar(&c.auditDB, "audit_db", defaultAuditDB, "SQLite audit log file")
	fs.StringVar(&c.auditJournal, "audit_journal_mode", "WAL", "WAL, or DELETE for network filesystems")
	fs.StringVar(&c.listen, "listen", ":6302", "address to listen on")
	fs.IntVar(&c.workers, "num_worker_commands", 50, "commands run at once per request")
	fs.DurationVar(&c.commandTimeout, "command_timeout", 30*time.Second, "deadline of a command when its platform sets none")
	fs.DurationVar(&c.shutdownGrace, "shutdown_grace", 60*time.Second, "how long running commands may finish after SIGTERM")
	fs.DurationVar(&c.readHeaderTimeout, "read_header_timeout", 10*time.Second, "how long a client may take to send its request line and headers")
	fs.StringVar(&c.scriptsDir, "scripts_dir", "", "working directory of commands (default: the topology's folder)")
	fs.StringVar(&c.logLevel, "log_level", "info", "debug, info, warn or error")
	fs.StringVar(&c.tlsCert, "tls_cert", "", "TLS certificate (PEM); serve HTTPS when set with tls_key")
	fs.StringVar(&c.tlsKey, "tls_key", "", "TLS private key (PEM)")
	return c
}

// parse applies args, then FLIGHT_POWER_SERVER_* env, then the conf file.
func (c *config) parse(args []string) error {
	for _, a := range args {
		name := strings.TrimLeft(a, "-")
		name, _, _ = strings.Cut(name, "=")
		if strings.HasPrefix(a, "-") && name == secretFlag {
			return usageError{fmt.Errorf("--%s on the command line is visible to every user: put it in the conf file or %s_JWT_SHARED_SECRET", secretFlag, envPrefix)}
		}
	}
	err := ff.Parse(c.fs, args,
		ff.WithEnvVarPrefix(envPrefix),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(c.parseConf),
		ff.WithAllowMissingConfigFile(true),
	)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if c.readHeaderTimeout <= 0 {
		return usageError{fmt.Errorf("read_header_timeout %s: must be positive, or a slow client could hold a connection for ever", c.readHeaderTimeout)}
	}
	if c.scriptsDir == "" {
		c.scriptsDir = filepath.Dir(c.topology)
	}
	return nil
}

// parseConf reads the original installer's key=value conf: comments,
// blank lines, optional "export", and single- or double-quoted values.
func (c *config) parseConf(r io.Reader, set func(name, value string) error) error {
	dir := filepath.Dir(c.path)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		key, value, ok, err := parseConfLine(sc.Text())
		if err != nil {
			return fmt.Errorf("%s:%d: %w", c.path, line, err)
		}
		if !ok {
			continue
		}
		if c.fs.Lookup(key) == nil || key == "config" {
			c.unknown = append(c.unknown, key)
			continue
		}
		if slices.Contains(pathKeys, key) && value != "" && !filepath.IsAbs(value) {
			value = filepath.Join(dir, value)
		}
		if err := set(key, value); err != nil {
			return fmt.Errorf("%s:%d: %w", c.path, line, err)
		}
	}
	return sc.Err()
}

// parseConfLine splits one conf line; ok is false for blanks and comments.
func parseConfLine(s string) (key, value string, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '#' {
		return "", "", false, nil
	}
	s = strings.TrimPrefix(s, "export ")
	key, value, found := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !found || key == "" {
		// Not quoted back: a line without its key may be a bare secret,
		// and this error goes to the log. The file and line say where.
		return "", "", false, errors.New("want key=value")
	}
	value = strings.TrimSpace(value)
	switch {
	case len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'':
		value = value[1 : len(value)-1]
	case len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"':
		v, uerr := strconv.Unquote(value)
		if uerr != nil {
			return "", "", false, fmt.Errorf("bad double-quoted value for %s", key)
		}
		value = v
	case strings.HasPrefix(value, "'") || strings.HasPrefix(value, `"`):
		return "", "", false, fmt.Errorf("unterminated quote in the value of %s", key)
	}
	return key, value, true, nil
}

// warnings are problems worth a log line but not a refusal to start.
func (c *config) warnings() []string {
	var out []string
	for _, k := range c.unknown {
		out = append(out, fmt.Sprintf("%s: unknown key %q ignored", c.path, k))
	}
	if fi, err := os.Stat(c.path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		out = append(out, fmt.Sprintf("%s is readable by others (mode %04o) and holds the JWT secret: chmod 600 %s", c.path, fi.Mode().Perm(), c.path))
	}
	return out
}

func (c *config) logger(w io.Writer, json bool) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("log_level %q: want debug, info, warn or error", c.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// commandEnv is the environment commands start from: the server's own,
// without its configuration (systemd's EnvironmentFile puts the conf's
// keys there) and without anything carrying the secret.
func commandEnv(environ []string, secret string, fs *flag.FlagSet) []string {
	own := func(k string) bool {
		return strings.HasPrefix(strings.ToUpper(k), envPrefix+"_") || fs.Lookup(strings.ToLower(k)) != nil
	}
	return runner.CommandEnv(environ, secret, own, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}
