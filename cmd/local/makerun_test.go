package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/handler"
)

// TestMakeRunFromFreshClone clones the repository's committed HEAD (what CI
// tests), runs `make run` in the clone, and uses the URL, token and curl
// command it prints.
func TestMakeRunFromFreshClone(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"git", "make", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed", tool)
		}
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("find the repository: %v", err)
	}
	dir := t.TempDir()
	clone := filepath.Join(dir, "clone")
	if out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(root)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command("make", "run", "STATE="+filepath.Join(dir, "state"), "LISTEN="+addr)
	cmd.Dir = clone
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})

	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var token, curl string
	var out []string
	deadline := time.After(4 * time.Minute) // a cold build in the clone
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended early:\n%s", strings.Join(out, "\n"))
			}
			out = append(out, l)
			if v, ok := strings.CutPrefix(l, "token: "); ok {
				token = v
			}
			if strings.HasPrefix(strings.TrimSpace(l), "curl ") {
				curl = strings.TrimSpace(l)
			}
			if strings.Contains(l, "listening") {
				break wait
			}
		case <-deadline:
			t.Fatalf("make run did not start the server:\n%s", strings.Join(out, "\n"))
		}
	}
	go func() { // keep draining so the server never blocks on its log
		for range lines {
		}
	}()
	if token == "" || curl == "" || !strings.Contains(strings.Join(out, "\n"), "http://"+addr) {
		t.Fatalf("make run did not print the URL, a token and a curl command:\n%s", strings.Join(out, "\n"))
	}

	req, _ := http.NewRequest("GET", "http://"+addr+"/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var nodes handler.Document[handler.NodeAttributes]
	if err := json.Unmarshal(body, &nodes); err != nil || len(nodes.Data) != 16 {
		t.Fatalf("GET /nodes with the printed token: %d %s (%v), want 16 demo nodes", resp.StatusCode, body, err)
	}

	// the printed curl command works as pasted
	got, err := exec.Command("sh", "-c", curl).Output()
	if err != nil {
		t.Fatalf("%s: %v", curl, err)
	}
	var status handler.Document[handler.CommandAttributes]
	if err := json.Unmarshal(got, &status); err != nil || len(status.Data) != 4 || status.Data[0].Attributes.State != "off" {
		t.Fatalf("printed curl answered %s (%v), want 4 demo nodes, off", got, err)
	}

	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatal("make run did not stop on Ctrl-C")
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "audit.db")); err != nil {
		t.Errorf("no audit log in the state folder: %v", err)
	}
}
