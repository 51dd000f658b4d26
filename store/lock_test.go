package store_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openflighthpc/flight-power/store"
)

// holdWriteLock starts the real sqlite3 shell on path inside BEGIN
// IMMEDIATE, as an admin who left a transaction open would, and returns a
// function that commits and ends it.
func holdWriteLock(tb testing.TB, path string) (release func()) {
	tb.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		tb.Fatal("sqlite3 shell not installed: run `make deps` (make test does)")
	}
	cmd := exec.Command(bin, path)
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.WriteString(in, "BEGIN IMMEDIATE;\n.print locked\n"); err != nil {
		tb.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		tb.Fatalf("sqlite3 shell did not take the write lock: %q %v", line, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = io.WriteString(in, "COMMIT;\n")
			in.Close()
			_ = cmd.Wait()
		})
	}
	tb.Cleanup(release)
	return release
}

// While another process holds the write lock, every write gives up after
// the busy timeout counted from when it was asked for, however many writes
// of this process queue behind each other: the 20th request refused must
// not wait 20 busy timeouts. Nothing refused is written later.
func TestWritesBehindAHeldLockWaitOneBusyTimeout(t *testing.T) {
	t.Parallel()
	const busy = 400 * time.Millisecond
	s, path := openStore(t, store.Options{BusyTimeout: busy})
	release := holdWriteLock(t, path)

	const n = 20
	var wg sync.WaitGroup
	waited := make([]time.Duration, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond) // arrive while others wait
			start := time.Now()
			if i%2 == 0 {
				errs[i] = s.BeginRequest(context.Background(), newRequest(fmt.Sprintf("r-%02d", i)))
			} else {
				errs[i] = s.RecordRequest(context.Background(), newRequest(fmt.Sprintf("r-%02d", i)))
			}
			waited[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] == nil {
			t.Errorf("write %d succeeded while another process held the write lock", i)
			continue
		}
		if waited[i] > busy+300*time.Millisecond {
			t.Errorf("write %d gave up after %v, want about the busy timeout %v", i, waited[i].Round(time.Millisecond), busy)
		}
		if i == n-1 && !strings.Contains(errs[i].Error(), "lock") {
			t.Errorf("error %q does not say the write lock was busy", errs[i])
		}
	}

	release()
	writeRequest(t, s, "r-after", 1)
	if got := shell(t, path, "SELECT group_concat(id) FROM requests"); got != "r-after" {
		t.Errorf("requests after the lock: got %q, want r-after alone", got)
	}
}
