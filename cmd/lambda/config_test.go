package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/store"
)

const testSecret = "lambda-test-secret-0123456789abcdef-xyz"

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c *config)
	}{
		{
			name: "defaults: topology beside bootstrap, audit db in /tmp with WAL, interrupted rows marked",
			env:  map[string]string{envSecret: testSecret},
			check: func(t *testing.T, c *config) {
				if c.topology != "/var/task/topology.yaml" || c.scriptsDir != "/var/task" {
					t.Errorf("topology %q scripts %q, want /var/task/topology.yaml and /var/task", c.topology, c.scriptsDir)
				}
				if c.auditDB != defaultAuditDB || c.journalMode != store.JournalWAL || c.auditShared {
					t.Errorf("audit %q %s shared=%v, want %s WAL shared=false", c.auditDB, c.journalMode, c.auditShared, defaultAuditDB)
				}
				if c.requestTimeout != 29*time.Second || c.finishMargin != 2*time.Second || c.commandTimeout != 25*time.Second || c.workers != 50 {
					t.Errorf("got %+v, want the documented defaults", c)
				}
			},
		},
		{
			name: "audit db on EFS: DELETE journal, shared",
			env:  map[string]string{envSecret: testSecret, envAuditDB: "/mnt/flight-power/audit.db"},
			check: func(t *testing.T, c *config) {
				if c.journalMode != store.JournalDelete || !c.auditShared {
					t.Errorf("got %s shared=%v, want DELETE shared=true", c.journalMode, c.auditShared)
				}
			},
		},
		{
			name: "a path that only starts like /tmp is not /tmp",
			env:  map[string]string{envSecret: testSecret, envAuditDB: "/tmpfs/audit.db", envJournalMode: "wal"},
			check: func(t *testing.T, c *config) {
				if !c.auditShared || c.journalMode != store.JournalWAL {
					t.Errorf("got %s shared=%v, want WAL (as set) shared=true", c.journalMode, c.auditShared)
				}
			},
		},
		{
			name: "everything set",
			env: map[string]string{
				envSecret: testSecret, envTopology: "/opt/etc/t.yaml", envScriptsDir: "/tmp/work",
				envCommandTimeout: "10s", envRequestTimeout: "14m", envFinishMargin: "0s", envWorkers: "8", envLogLevel: "debug",
			},
			check: func(t *testing.T, c *config) {
				if c.topology != "/opt/etc/t.yaml" || c.scriptsDir != "/tmp/work" || c.commandTimeout != 10*time.Second ||
					c.requestTimeout != 14*time.Minute || c.finishMargin != 0 || c.workers != 8 || c.logLevel.String() != "DEBUG" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "no secret", env: map[string]string{}, wantErr: envSecret + " is not set"},
		{name: "short secret", env: map[string]string{envSecret: "short"}, wantErr: "at least 32"},
		{name: "bad journal", env: map[string]string{envSecret: testSecret, envJournalMode: "MEMORY"}, wantErr: envJournalMode},
		{name: "bad timeout", env: map[string]string{envSecret: testSecret, envCommandTimeout: "soon"}, wantErr: envCommandTimeout},
		{name: "zero request timeout", env: map[string]string{envSecret: testSecret, envRequestTimeout: "0s"}, wantErr: envRequestTimeout},
		{name: "negative margin", env: map[string]string{envSecret: testSecret, envFinishMargin: "-1s"}, wantErr: envFinishMargin},
		{name: "bad workers", env: map[string]string{envSecret: testSecret, envWorkers: "0"}, wantErr: envWorkers},
		{name: "bad log level", env: map[string]string{envSecret: testSecret, envLogLevel: "loud"}, wantErr: envLogLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := loadConfig(func(k string) string { return tt.env[k] }, "/var/task")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestCommandEnv(t *testing.T) {
	t.Parallel()
	environ := []string{
		"AWS_ACCESS_KEY_ID=ASIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=wJalrEXAMPLE",
		"AWS_SESSION_TOKEN=IQoJEXAMPLE",
		"AWS_REGION=eu-west-1",
		"AWS_DEFAULT_REGION=eu-west-1",
		"AWS_LAMBDA_FUNCTION_NAME=flight-power",
		"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001",
		"LAMBDA_TASK_ROOT=/var/task",
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"FLIGHT_POWER_JWT_SHARED_SECRET=" + testSecret,
		"FLIGHT_POWER_AUDIT_DB=/tmp/a.db",
		"flight_power_log_level=debug",
		"COPY_OF_IT=prefix-" + testSecret,
	}
	got := commandEnv(environ, testSecret)
	want := []string{
		"AWS_ACCESS_KEY_ID=ASIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=wJalrEXAMPLE",
		"AWS_SESSION_TOKEN=IQoJEXAMPLE",
		"AWS_REGION=eu-west-1",
		"AWS_DEFAULT_REGION=eu-west-1",
		"AWS_LAMBDA_FUNCTION_NAME=flight-power",
		"LAMBDA_TASK_ROOT=/var/task",
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"HOME=/tmp",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}

	if got := commandEnv([]string{"HOME=/home/sbx"}, testSecret); !slices.Equal(got, []string{"HOME=/home/sbx", "PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin"}) {
		t.Errorf("got %q, want HOME kept and a PATH added", got)
	}
}
