package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/openflighthpc/flight-power/handler"
)

// maxAnswerBytes bounds what the client reads of an answer: 65,536 nodes'
// results fit many times over.
const maxAnswerBytes = 256 << 20

// client sends requests to the server named by a config.
type client struct {
	cfg  *config
	http *http.Client
}

func newClient(cfg *config) *client {
	return &client{cfg: cfg, http: &http.Client{}}
}

// answer is a successful reply's body and its audit id.
type answer struct {
	body      []byte
	requestID string
}

// do sends one request and classifies every way it can fail into an
// exitError whose message says what to do next.
func (c *client) do(ctx context.Context, method, path, query string) (*answer, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	u := c.cfg.baseURL + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(rctx, method, u, nil)
	if err != nil {
		return nil, usageErrorf("base_url %q (from %s): %v", c.cfg.baseURL, c.cfg.from[keyBaseURL], err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "flight-power/"+version)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, c.transportError(ctx, rctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(resp, body)
	}
	return &answer{body: body, requestID: resp.Header.Get("X-Request-Id")}, nil
}

// errInterrupted marks a request cut short by Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted before the server answered")

func (c *client) transportError(parent, rctx context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return &exitError{code: exitInterrupted, err: errInterrupted}
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		return serverErrorf("no answer from %s within %s: commands may still be running there; check with flight-power status, or raise --timeout", c.cfg.baseURL, c.cfg.timeout)
	}
	reason := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		reason = ue.Err.Error()
		var oe *net.OpError
		if errors.As(ue.Err, &oe) && oe.Err != nil {
			reason = oe.Err.Error()
		}
	}
	return serverErrorf("cannot reach the server at %s: %s: check that flight-power-server runs there and that base_url (from %s) is right",
		c.cfg.baseURL, reason, c.cfg.from[keyBaseURL])
}

// statusError turns an error answer into one line, showing the server's
// own detail, which already says what to do.
func (c *client) statusError(resp *http.Response, body []byte) error {
	detail := errorDetail(body)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if detail == "" {
			detail = "the token is missing, invalid or expired: mint a new one with flight-power-server token"
		}
		return serverErrorf("token rejected by %s: %s (jwt_token from %s)", c.cfg.baseURL, detail, c.cfg.from[keyToken])
	case http.StatusForbidden:
		if detail == "" {
			detail = "this token's role may not do that: ask for an operator token"
		}
		return serverErrorf("You do not have permission: %s", detail)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		if detail == "" {
			detail = resp.Status
		}
		return usageErrorf("the server refused the request: %s", detail)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return serverErrorf("%s answered %s%s: check that base_url (from %s) is a flight-power server",
			c.cfg.baseURL, resp.Status, prefixed(": ", detail), c.cfg.from[keyBaseURL])
	default:
		return serverErrorf("server error from %s: %s%s", c.cfg.baseURL, resp.Status, prefixed(": ", detail))
	}
}

// errorDetail is the detail of a JSON:API error answer or, failing that,
// the first line of the body.
func errorDetail(body []byte) string {
	var doc handler.ErrorDocument
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		var parts []string
		for _, e := range doc.Errors {
			if d := strings.TrimSpace(e.Detail); d != "" {
				parts = append(parts, d)
			} else if t := strings.TrimSpace(e.Title); t != "" {
				parts = append(parts, t)
			}
		}
		return oneLine(strings.Join(parts, "; "))
	}
	return oneLine(string(body))
}

// oneLine keeps the first line of s, capped, so that an HTML error page
// does not flood the terminal.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// decode reads a successful answer's JSON into v.
func (c *client) decode(a *answer, v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return serverErrorf("unexpected answer from %s: %v: check that base_url (from %s) is a flight-power server",
			c.cfg.baseURL, err, c.cfg.from[keyBaseURL])
	}
	return nil
}

// targetQuery is the query the original client sent: nodes= or groups=
// with the arguments joined by commas, brackets escaped as %5B and %5D.
func targetQuery(groups bool, targets []string) string {
	key := "nodes"
	if groups {
		key = "groups"
	}
	value := url.QueryEscape(strings.Join(targets, ","))
	return key + "=" + strings.ReplaceAll(value, "%2C", ",")
}
