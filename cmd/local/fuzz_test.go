package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// confSeeds are conf lines as the original installer, init, systemd users
// and careless editors write them.
var confSeeds = []string{
	"listen=:6302",
	"jwt_shared_secret='abc def'",
	`jwt_shared_secret='a\nb$c"d'`,
	`topology_config="/opt/x y.yaml"`,
	`jwt_shared_secret="esc\"aped\\"`,
	"export log_level=debug",
	"  audit_db = /var/a.db  ",
	"jwt_shared_secret=a=b",
	"scripts_dir=",
	"# jwt_shared_secret=x",
	"   ",
	"listen",
	"jwt_shared_secret='abc",
	`jwt_shared_secret="bad\q"`,
	"jwt_shared_secret 0123456789abcdef0123456789abcdef",
	"=value",
	"'",
	"export ",
	"num_worker_commands=lots",
	"config=/etc/other.conf",
	"unknown_key=1",
	"jwt_shared_secret=\xff\xfe",
}

// FuzzParseConfLine: a conf line never panics the parser; a parsed line
// has a clean key, and any value init or an editor could write with quotes
// reads back as written.
func FuzzParseConfLine(f *testing.F) {
	for _, s := range confSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		key, value, ok, err := parseConfLine(line)
		if err != nil {
			if ok || key != "" || value != "" {
				t.Fatalf("parseConfLine(%q): got %q=%q ok=%v with error %v", line, key, value, ok, err)
			}
			checkNoValueInError(t, line, err)
			return
		}
		if !ok {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#") {
				t.Fatalf("parseConfLine(%q): skipped a line that is neither blank nor a comment", line)
			}
			return
		}
		if key == "" || key != strings.TrimSpace(key) || strings.Contains(key, "=") {
			t.Fatalf("parseConfLine(%q): got key %q, want a trimmed key without '='", line, key)
		}
		// Read back what a writer would put down for this key and value.
		if strings.ContainsAny(key, " \t\r\n\v\f#'\"") || strings.HasPrefix(key, "export") {
			return
		}
		if !strings.ContainsAny(value, "'\n\r") && value == strings.TrimSpace(value) {
			if k, v, ok, err := parseConfLine(key + "='" + value + "'"); err != nil || !ok || k != key || v != value {
				t.Fatalf("single-quoted %q=%q reads back as %q=%q ok=%v err=%v", key, value, k, v, ok, err)
			}
		}
		if k, v, ok, err := parseConfLine(key + "=" + strconv.Quote(value)); err != nil || !ok || k != key || v != value {
			t.Fatalf("double-quoted %q=%q reads back as %q=%q ok=%v err=%v", key, value, k, v, ok, err)
		}
	})
}

// checkNoValueInError fails when the error for a line that does not parse
// quotes what may be a secret: the value after '=', or the whole line when
// there is no '='. It may name the key; the file and line number say where
// to look.
func checkNoValueInError(t *testing.T, line string, err error) {
	t.Helper()
	s, msg := strings.TrimSpace(line), err.Error()
	if k, v, found := strings.Cut(s, "="); found {
		s = v
		if k = strings.TrimSpace(strings.TrimPrefix(k, "export ")); k != "" {
			msg = strings.ReplaceAll(msg, k, "")
		}
	}
	s = strings.Trim(strings.TrimSpace(s), `'"`)
	if len(s) >= 8 && strings.Contains(msg, s) {
		t.Fatalf("the error for %q quotes its value: %v", line, err)
	}
}

// FuzzConfFile: a whole conf file, read as serve reads it, never panics
// the server, and no error or warning quotes the JWT secret or a line that
// could hold it.
func FuzzConfFile(f *testing.F) {
	f.Add([]byte("jwt_shared_secret='0123456789abcdef0123456789abcdef'\ntopology_config=topology.yaml\naudit_db=audit.db\nlisten=127.0.0.1:0\n"))
	f.Add([]byte(strings.Join(confSeeds, "\n")))
	f.Add([]byte("jwt_shared_secret=0123456789abcdef0123456789abcdef\njwt_shared_secret 0123456789abcdef0123456789abcdef\n"))
	f.Add([]byte("command_timeout=soon\nnum_worker_commands=-1\nlog_level=loud\n"))
	f.Add([]byte("\xef\xbb\xbfjwt_shared_secret=x\r\nlisten=:1\r\n"))
	for _, s := range confSeeds {
		f.Add([]byte(s + "\n"))
	}
	dir := f.TempDir()
	envSecret := os.Getenv(envPrefix + "_JWT_SHARED_SECRET")
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "power-server.conf")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := newConfigFlags("fuzz", io.Discard)
		err := cfg.parse([]string{"--config", path})

		// The secrets the file tries to set, lines that may be one, and the
		// other keys and values, which a message may quote, as it may the
		// file's path.
		var secrets []string
		others := []string{path, secretFlag}
		for _, line := range strings.Split(string(data), "\n") {
			key, value, ok, lerr := parseConfLine(line)
			switch {
			case lerr != nil:
				checkNoValueInError(t, line, lerr)
				if s := strings.TrimSpace(line); !strings.Contains(s, "=") && len(s) >= 8 {
					secrets = append(secrets, s)
				}
			case ok && key == secretFlag:
				secrets = append(secrets, value)
			case ok:
				others = append(others, key, value)
			}
		}
		var said []string
		if err != nil {
			said = append(said, err.Error())
		} else {
			said = append(said, cfg.warnings()...)
		}
		for _, s := range secrets {
			if len(s) < 8 || slices.ContainsFunc(others, func(o string) bool { return strings.Contains(o, s) }) {
				continue
			}
			for _, msg := range said {
				if strings.Contains(msg, s) {
					t.Fatalf("%q quotes a secret from the conf file", msg)
				}
			}
		}
		if err == nil && envSecret == "" && len(secrets) > 0 {
			// The last value set wins; lines that are not key=value refuse
			// the whole file, so here every secret is a value.
			if want := secrets[len(secrets)-1]; cfg.secret != want {
				t.Fatalf("jwt_shared_secret: got %q, want the last one set, %q", cfg.secret, want)
			}
		}
	})
}

// make fuzz runs every fuzz target in the module: its FUZZ_TARGETS list
// them all, each as package:Name.
func TestMakeFuzzListsEveryTarget(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FUZZ_TARGETS\s*:=((?:.*\\\n)*.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile has no FUZZ_TARGETS")
	}
	listed := strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " "))
	var found []string
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(\w+ \*testing\.F\)`)
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, f := range fuzzFunc.FindAllSubmatch(b, -1) {
			found = append(found, filepath.ToSlash(rel)+":"+string(f[1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(found)
	slices.Sort(listed)
	if !slices.Equal(found, listed) {
		t.Errorf("Makefile FUZZ_TARGETS:\ngot  %v\nwant %v (every func Fuzz... in the module)", listed, found)
	}
}
