package main

import (
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The topologies init writes. The default one is the original's three
// placeholder nodes; the demo one runs without hardware.
var (
	//go:embed etc/topology.yaml
	defaultTopology []byte
	//go:embed etc/demo-topology.yaml
	demoTopology []byte
)

// runInit writes the conf with a random secret and a topology beside it,
// never overwriting either.
func runInit(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := newConfigFlags("init", stderr)
	demo := cfg.fs.Bool("demo", false, "write the demo topology (simulated nodes) instead of the default one")
	if err := cfg.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.fs.NArg() > 0 {
		return usageError{fmt.Errorf("init takes no arguments, got %q", cfg.fs.Args())}
	}
	set := map[string]bool{}
	cfg.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	topoPath := cfg.topology
	if !set["topology_config"] {
		topoPath = filepath.Join(filepath.Dir(cfg.path), "power-server", "topology.yaml")
	}
	topoPath, err := filepath.Abs(topoPath)
	if err != nil {
		return err
	}
	auditDB, err := filepath.Abs(cfg.auditDB)
	if err != nil {
		return err
	}

	topo := defaultTopology
	if *demo {
		topo = demoTopology
	}
	switch wrote, err := writeNew(topoPath, topo, 0o644); {
	case err != nil:
		return err
	case wrote:
		fmt.Fprintln(stdout, "wrote", topoPath)
	default:
		fmt.Fprintln(stdout, "kept existing", topoPath)
	}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("generate secret: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# flight-power-server configuration: key=value lines, also read by systemd\n")
	fmt.Fprintf(&b, "# as an EnvironmentFile. Keep it mode 0600: it holds the JWT secret.\n")
	fmt.Fprintf(&b, "jwt_shared_secret='%s'\n", hex.EncodeToString(secret))
	fmt.Fprintf(&b, "topology_config=%s\n", topoPath)
	fmt.Fprintf(&b, "audit_db=%s\n", auditDB)
	fmt.Fprintf(&b, "listen=%s\n", cfg.listen)
	fmt.Fprintf(&b, "num_worker_commands=%d\n", cfg.workers)
	fmt.Fprintf(&b, "command_timeout=%s\n", cfg.commandTimeout)
	if set["scripts_dir"] {
		dir, err := filepath.Abs(cfg.scriptsDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "scripts_dir=%s\n", dir)
	} else {
		fmt.Fprintf(&b, "# scripts_dir=%s\n", filepath.Dir(topoPath))
	}
	fmt.Fprintf(&b, "log_level=%s\n", cfg.logLevel)
	fmt.Fprintf(&b, "# tls_cert=/path/to/cert.pem\n# tls_key=/path/to/key.pem\n")
	switch wrote, err := writeNew(cfg.path, []byte(b.String()), 0o600); {
	case err != nil:
		return err
	case wrote:
		fmt.Fprintln(stdout, "wrote", cfg.path, "(mode 0600, with a new random secret)")
	default:
		fmt.Fprintln(stdout, "kept existing", cfg.path)
	}
	return nil
}

// writeNew creates path with data unless it exists; it reports whether it
// wrote.
func writeNew(path string, data []byte, perm os.FileMode) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
