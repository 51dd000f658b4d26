package main

import (
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseConfLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line, key, value string
		ok, wantErr            bool
	}{
		{"plain", "listen=:6302", "listen", ":6302", true, false},
		{"single quoted from the original installer", "jwt_shared_secret='abc def'", "jwt_shared_secret", "abc def", true, false},
		{"single quotes keep backslashes and dollars", `jwt_shared_secret='a\nb$c"d'`, "jwt_shared_secret", `a\nb$c"d`, true, false},
		{"double quoted", `topology_config="/opt/x y.yaml"`, "topology_config", "/opt/x y.yaml", true, false},
		{"export prefix", "export log_level=debug", "log_level", "debug", true, false},
		{"spaces around", "  audit_db = /var/a.db  ", "audit_db", "/var/a.db", true, false},
		{"value with equals", "jwt_shared_secret=a=b", "jwt_shared_secret", "a=b", true, false},
		{"empty value", "scripts_dir=", "scripts_dir", "", true, false},
		{"comment", "# jwt_shared_secret=x", "", "", false, false},
		{"blank", "   ", "", "", false, false},
		{"no equals", "listen", "", "", false, true},
		{"unterminated quote", "jwt_shared_secret='abc", "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, v, ok, err := parseConfLine(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if k != tt.key || v != tt.value || ok != tt.ok {
				t.Errorf("got %q=%q ok=%v, want %q=%q ok=%v", k, v, ok, tt.key, tt.value, tt.ok)
			}
		})
	}
}

func TestCommandEnvDropsServerSecrets(t *testing.T) {
	t.Parallel()
	c := newConfigFlags("t", io.Discard)
	secret := "s3cret-s3cret-s3cret-s3cret-s3cret"
	env := []string{
		"PATH=/usr/bin",
		"HOME=/root",
		"jwt_shared_secret='" + secret + "'", // systemd EnvironmentFile
		"topology_config=/x.yaml",
		"FLIGHT_POWER_SERVER_LISTEN=:1",
		"OTHER=contains " + secret,
		"AWS_REGION=eu-west-1",
	}
	got := commandEnv(env, secret, c.fs)
	want := []string{"PATH=/usr/bin", "HOME=/root", "AWS_REGION=eu-west-1"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := commandEnv([]string{"A=b"}, "", flag.NewFlagSet("x", flag.ContinueOnError)); !strings.HasPrefix(got[len(got)-1], "PATH=") {
		t.Errorf("no PATH added: %q", got)
	}
}

// A conf line that is not key=value may be a secret whose key was lost in
// an edit; the error, which goes to the log, names the file and line only.
func TestConfErrorDoesNotQuoteTheLine(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123456789abcdef"
	for _, line := range []string{secret, "jwt_shared_secret " + secret, "jwt_shared_secret: " + secret} {
		path := filepath.Join(t.TempDir(), "power-server.conf")
		writeFile(t, path, "listen=:1\n"+line+"\n", 0o600)
		err := newConfigFlags("t", io.Discard).parse([]string{"--config", path})
		if err == nil || !strings.Contains(err.Error(), path+":2: want key=value") {
			t.Errorf("%q: got %v, want %s:2: want key=value", line, err, path)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%q: the error quotes the secret: %v", line, err)
		}
	}
}
