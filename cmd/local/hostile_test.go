package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Hostile requests against the real binary over real TCP. Every command of
// the marker platform appends a line to the file "marker" in the server's
// folder, so "nothing ran" is a file that did not grow, and every request
// that reaches the handler must leave exactly one audit row.

// markerTopology is n nodes, node01..node<n>, on a platform whose every
// command appends "<action> <name>" to ./marker (scripts_dir is the
// topology's folder).
func markerTopology(n int) string {
	var b strings.Builder
	b.WriteString("static_nodes:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  node%02d: {platform: mark}\n", i)
	}
	b.WriteString(`groups:
  all: ["node[01-` + fmt.Sprintf("%02d", n) + `]"]
platforms:
  mark:
    variables: [name]
    power_on: echo "power_on $name" >> marker
    power_off: echo "power_off $name" >> marker
    restart: echo "restart $name" >> marker
    status: |-
      echo "status $name" >> marker
      exit 111
`)
	return b.String()
}

// markerLines is what the marker platform's commands have written so far.
func markerLines(tb testing.TB, s *server) []string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "marker"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// addr is the server's host:port.
func (s *server) addr() string { return strings.TrimPrefix(s.url, "http://") }

// rawResult is what came back on a raw connection: a response, or none
// (closed, reset) and why.
type rawResult struct {
	resp *http.Response
	body []byte
	err  error
}

// raw writes req to a new connection exactly as given (no client to
// normalise the path or refuse odd bytes), while reading one response.
func (s *server) raw(tb testing.TB, req string) rawResult {
	tb.Helper()
	c, err := net.Dial("tcp", s.addr())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	go func() { _, _ = io.WriteString(c, req) }() // may fail: the server can hang up mid-request
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return rawResult{err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return rawResult{resp: resp, body: body, err: err}
}

// hostileToken signs claims with method and key, however wrong they are.
func hostileToken(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// storedSafely fails unless every text column of the request's audit row
// is valid UTF-8 without control characters: what an admin's terminal
// shows from sqlite3 must not be NULs or escape sequences.
func storedSafely(tb testing.TB, s *server, id string) {
	tb.Helper()
	row := sqlOne(tb, s.db, "SELECT hex(coalesce(method,''))||'|'||hex(coalesce(path,''))||'|'||hex(coalesce(query,''))||'|'||hex(coalesce(error,''))||'|'||hex(coalesce(caller,'')) FROM requests WHERE id='"+id+"'")
	for i, h := range strings.Split(row, "|") {
		b, err := hex.DecodeString(h)
		if err != nil {
			tb.Fatal(err)
		}
		if !utf8.Valid(b) || strings.IndexFunc(string(b), unicode.IsControl) >= 0 {
			tb.Errorf("request %s: column %d stored as %q: want valid UTF-8 without control characters", id, i, b)
		}
	}
}

func TestHostileRequests(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, markerTopology(3), "")
	s.start()
	secret := []byte(e2eSecret)
	now := time.Now()
	good := jwt.MapClaims{"sub": "mallory", "exp": now.Add(time.Hour).Unix()}
	bearer := func(tok string) string { return "Authorization: Bearer " + tok + "\r\n" }
	op := bearer(s.token("operator"))

	cases := []struct {
		name    string
		method  string
		target  string
		headers string
		status  int
		allow   string // the Allow header a 405 carries
		ran     int    // commands the request runs
	}{
		{"alg none", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)), 401, "", 0},
		{"HS512 with the right secret", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodHS512, secret, good)), 401, "", 0},
		{"expired", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "mallory", "exp": now.Add(-time.Minute).Unix()})), 401, "", 0},
		{"no exp", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "mallory"})), 401, "", 0},
		{"nbf in the future", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "mallory", "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), 401, "", 0},
		{"wrong secret", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0123456789"), good)), 401, "", 0},
		{"unknown role", "PATCH", "/?nodes=node01", bearer(hostileToken(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "mallory", "role": "root", "exp": now.Add(time.Hour).Unix()})), 401, "", 0},
		{"Basic scheme", "PATCH", "/?nodes=node01", "Authorization: Basic bWFsbG9yeTpwYXNz\r\n", 401, "", 0},
		{"token without scheme", "PATCH", "/?nodes=node01", "Authorization: " + s.token("operator") + "\r\n", 401, "", 0},
		{"no Authorization", "PATCH", "/?nodes=node01", "", 401, "", 0},
		{"viewer powering on", "PATCH", "/?nodes=node01", bearer(s.token("viewer")), 403, "", 0},
		// RFC 7235: the scheme is case-insensitive, so this one is a
		// valid request and its command runs.
		{"lowercase bearer", "GET", "/?nodes=node01", "Authorization: bearer " + s.token("operator") + "\r\n", 200, "", 1},
		{"range of 99,999,999 names", "PATCH", "/?nodes=node%5B1-99999999%5D", op, 400, "", 0},
		{"nodes[]=x", "PATCH", "/?nodes%5B%5D=x", op, 400, "", 0},
		{"unknown parameter", "PATCH", "/?node=node01", op, 400, "", 0},
		{"semicolon separator", "PATCH", "/?nodes=node01;rm", op, 400, "", 0},
		{"NUL in a name", "PATCH", "/?nodes=node01%00x", op, 400, "", 0},
		{"NUL in a group", "PATCH", "/?groups=all%00", op, 400, "", 0},
		{"invalid UTF-8 in a name, escaped", "PATCH", "/?nodes=node%FF%FE", op, 400, "", 0},
		{"invalid UTF-8 in a name, raw bytes", "PATCH", "/?nodes=node\xff\xfe", op, 400, "", 0},
		{"terminal escape in a name", "PATCH", "/?nodes=%1B%5D2%3Bowned%07", op, 400, "", 0},
		{"shell in a name", "PATCH", "/?nodes=%24%28touch%20pwned%29", op, 400, "", 0},
		{"unknown node runs nothing", "PATCH", "/?nodes=node99", op, 200, "", 0},
		{"query over 64 KiB", "GET", "/?nodes=" + strings.Repeat("n", 100<<10), op, 413, "", 0},
		{"body on an action", "PATCH", "/?nodes=node01", op + "Content-Length: 2000000\r\n", 413, "", 0},
		{"dot-dot", "GET", "/../nodes", op, 404, "", 0},
		{"double slash", "GET", "//nodes", op, 404, "", 0},
		{"escaped dot-dot", "GET", "/%2e%2e/nodes", op, 404, "", 0},
		{"trailing slash", "GET", "/nodes/", op, 404, "", 0},
		{"upper case", "GET", "/NODES", op, 404, "", 0},
		{"NUL and invalid UTF-8 in the path", "GET", "/nodes%00%FF", op, 404, "", 0},
		{"absolute URI", "GET", "http://evil.example/../../nodes", op, 404, "", 0},
		{"HEAD", "HEAD", "/?nodes=node01", op, 405, "GET, PATCH, PUT, DELETE", 0},
		{"OPTIONS", "OPTIONS", "/nodes", op, 405, "GET", 0},
		{"TRACE", "TRACE", "/groups", op, 405, "GET", 0},
		{"POST", "POST", "/?nodes=node01", op + "Content-Length: 0\r\n", 405, "GET, PATCH, PUT, DELETE", 0},
		{"made-up method", "FROB", "/?nodes=node01", op, 405, "GET, PATCH, PUT, DELETE", 0},
	}
	ran := 0
	for _, c := range cases {
		rows := sqlOne(t, s.db, "SELECT count(*) FROM requests")
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: flight-power\r\n%sConnection: close\r\n\r\n", c.method, c.target, c.headers)
		if strings.Contains(c.headers, "Content-Length: 2000000") {
			req += strings.Repeat("x", 2000000)
		}
		r := s.raw(t, req)
		if r.err != nil {
			t.Errorf("%s: no answer: %v", c.name, r.err)
			continue
		}
		t.Logf("%-36s %d %.120s", c.name, r.resp.StatusCode, r.body)
		if r.resp.StatusCode != c.status {
			t.Errorf("%s: status got %d, want %d (%s)", c.name, r.resp.StatusCode, c.status, r.body)
		}
		if got := r.resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s: Allow got %q, want %q", c.name, got, c.allow)
		}
		if c.status >= 400 && c.method != "HEAD" && !strings.HasPrefix(string(r.body), `{"errors":[{"status":"`+strconv.Itoa(c.status)) {
			t.Errorf("%s: body %.200s: want a JSON error", c.name, r.body)
		}
		id := r.resp.Header.Get("X-Request-Id")
		if id == "" {
			t.Errorf("%s: no X-Request-Id", c.name)
			continue
		}
		// exactly one row, found by its id and by the count
		if got := sqlOne(t, s.db, "SELECT count(*) FROM requests"); got != fmt.Sprint(atoi(t, rows)+1) {
			t.Errorf("%s: requests rows %s -> %s, want one more", c.name, rows, got)
		}
		if got := sqlOne(t, s.db, "SELECT status||'|'||state||'|'||(SELECT count(*) FROM results WHERE request_id=requests.id AND ran=1) FROM requests WHERE id='"+id+"'"); got != fmt.Sprintf("%d|done|%d", c.status, c.ran) {
			t.Errorf("%s: audit row status|state|commands run got %q, want %d|done|%d", c.name, got, c.status, c.ran)
		}
		if c.status == 401 {
			if got := sqlOne(t, s.db, "SELECT quote(caller) FROM requests WHERE id='"+id+"'"); got != "NULL" {
				t.Errorf("%s: an unverified token's subject was recorded as the caller: %s", c.name, got)
			}
		}
		storedSafely(t, s, id)
		ran += c.ran
		if got := markerLines(t, s); len(got) != ran {
			t.Fatalf("%s: commands run so far %q, want %d", c.name, got, ran)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "pwned")); err == nil {
		t.Errorf("a node name was executed by the shell")
	}
	if got := sqlOne(t, s.db, "SELECT count(*) FROM requests"); got != strconv.Itoa(len(cases)) {
		t.Errorf("requests rows: got %s, want %d, one per request", got, len(cases))
	}
	if got := sqlOne(t, s.db, "SELECT length(query) <= 4096 FROM requests WHERE status = 413 AND method = 'GET'"); got != "1" {
		t.Errorf("a 100 KiB query was stored uncapped")
	}
}

// Requests net/http refuses before the handler exists for them: no
// X-Request-Id, no audit row (nothing reached the handler to record), and
// nothing runs. The server keeps serving.
func TestHostileRequestsRefusedByNetHTTP(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	s := newServerFiles(t, markerTopology(3), "")
	s.start()
	op := "Authorization: Bearer " + s.token("operator") + "\r\n"
	cases := []struct {
		name, req string
		status    int // 0: the connection may be cut before an answer is read
	}{
		{"10 MB query", "PATCH /?nodes=" + strings.Repeat("n", 10<<20) + " HTTP/1.1\r\nHost: x\r\n" + op + "\r\n", 431},
		{"2 MiB header", "PATCH /?nodes=node01 HTTP/1.1\r\nHost: x\r\n" + op + "X-Pad: " + strings.Repeat("p", 2<<20) + "\r\n\r\n", 431},
		{"raw NUL in the request line", "PATCH /?nodes=node01\x00 HTTP/1.1\r\nHost: x\r\n" + op + "\r\n", 400},
		{"no Host", "PATCH /?nodes=node01 HTTP/1.1\r\n" + op + "\r\n", 400},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400},
	}
	for _, c := range cases {
		r := s.raw(t, c.req)
		if r.resp != nil {
			t.Logf("%-28s %d %q", c.name, r.resp.StatusCode, r.body)
		}
		switch {
		case r.err != nil:
			t.Errorf("%s: no answer (%v), want %d from net/http", c.name, r.err, c.status)
		case r.resp.StatusCode != c.status:
			t.Errorf("%s: status got %d, want %d", c.name, r.resp.StatusCode, c.status)
		case r.resp.Header.Get("X-Request-Id") != "":
			t.Errorf("%s: answered by the handler, want net/http", c.name)
		}
	}
	if got := sqlOne(t, s.db, "SELECT count(*) FROM requests"); got != "0" {
		t.Errorf("requests rows: got %s, want 0", got)
	}
	if got := markerLines(t, s); len(got) != 0 {
		t.Errorf("commands ran: %q", got)
	}
	if r := s.do("GET", "/?nodes=node01", s.token("viewer")); r.status != 200 {
		t.Errorf("after the hostile requests: %d %s", r.status, r.body)
	}
}

// A client that sends its headers a byte a second is cut off at
// read_header_timeout, never reaches the handler, and holds nobody up.
func TestSlowlorisIsCutOff(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	const timeout = 4 * time.Second
	s := newServerFiles(t, markerTopology(2), fmt.Sprintf("read_header_timeout=%s\n", timeout))
	s.start()
	viewer := s.token("viewer")

	var wg sync.WaitGroup
	slow := make(chan time.Duration, 3)
	slowStart := time.Now()
	for range 3 {
		wg.Go(func() {
			c, err := net.Dial("tcp", s.addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			start := time.Now()
			go func() {
				for _, b := range []byte("GET /?nodes=node01 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + viewer + "\r\n\r\n") {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			// net/http answers a bare 400 (or nothing) and hangs up.
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || (len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400 ")) {
				t.Errorf("slow client got %q, %v: want the connection closed", got, err)
			}
			slow <- time.Since(start)
		})
	}
	// Others are served while the slow clients still hold their connections.
	const fast = 6
	for i := range fast {
		start := time.Now()
		r := s.do("GET", "/?nodes=node02", viewer)
		if r.status != 200 || time.Since(start) > timeout/4 {
			t.Errorf("request %d during the slow clients: %d after %v", i, r.status, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(slowStart); d >= timeout {
		t.Errorf("the fast requests took %v, longer than the slow clients were connected", d)
	}
	wg.Wait()
	close(slow)
	for d := range slow {
		t.Logf("slow client cut off after %v", d.Round(time.Millisecond))
		if d < timeout-100*time.Millisecond || d > timeout+2*time.Second {
			t.Errorf("slow client cut off after %v, want %v (+ up to 2 s)", d, timeout)
		}
	}
	if got := sqlOne(t, s.db, "SELECT count(*) FROM requests"); got != strconv.Itoa(fast) {
		t.Errorf("requests rows: got %s, want the %d fast ones", got, fast)
	}
	if got := markerLines(t, s); len(got) != fast || strings.Contains(strings.Join(got, ","), "node01") {
		t.Errorf("commands run: %q, want node02's %d only", got, fast)
	}
}

func atoi(tb testing.TB, s string) int {
	tb.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestReadHeaderTimeoutMustBePositive(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0s", "-1s"} {
		c := newConfigFlags("serve", io.Discard)
		err := c.parse([]string{"--config", "/nonexistent/power-server.conf", "--read_header_timeout", v})
		if err == nil || !strings.Contains(err.Error(), "read_header_timeout") {
			t.Errorf("read_header_timeout=%s: got %v, want an error naming the key", v, err)
		}
	}
	c := newConfigFlags("serve", io.Discard)
	if err := c.parse([]string{"--config", "/nonexistent/power-server.conf"}); err != nil || c.readHeaderTimeout != 10*time.Second {
		t.Errorf("default read_header_timeout: got %v, %v, want 10s", c.readHeaderTimeout, err)
	}
}
