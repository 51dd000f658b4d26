package handler

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Transports that feed the handler.
const (
	TransportHTTP   = "http"
	TransportLambda = "lambda"
)

// Request is a transport-neutral HTTP request.
type Request struct {
	Method      string
	Path        string // decoded path, without the query
	RawQuery    string
	Header      http.Header
	Body        []byte
	BodyTooBig  bool // the transport stopped reading the body at its limit
	RemoteAddr  string
	Transport   string // TransportHTTP or TransportLambda
	TransportID string // the transport's own request id, if any
}

// Response is a transport-neutral HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Limits applied to every request.
const (
	DefaultMaxQueryBytes = 64 << 10
	DefaultMaxBodyBytes  = 1 << 20
)

// Config is everything a Handler needs.
type Config struct {
	Secret        []byte   // HS256 shared secret, >= MinSecretBytes
	Runner        Runner   // the topology and command runner
	Audit         AuditLog // where every request and result is recorded
	Logger        *slog.Logger
	HostlistCap   int           // names one request may expand to; default DefaultHostlistCap
	MaxQueryBytes int           // default DefaultMaxQueryBytes
	Leeway        time.Duration // clock skew allowed on exp/nbf
	Now           func() time.Time
}

// Handler serves the flight-power API for any transport.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	tokens *tokenCache
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if err := CheckSecret(cfg.Secret); err != nil {
		return nil, err
	}
	if cfg.Runner == nil || cfg.Audit == nil {
		return nil, errors.New("handler needs a runner and an audit log")
	}
	if cfg.HostlistCap <= 0 {
		cfg.HostlistCap = DefaultHostlistCap
	}
	if cfg.MaxQueryBytes <= 0 {
		cfg.MaxQueryBytes = DefaultMaxQueryBytes
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, now: cfg.Now, tokens: newTokenCache()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// route is one entry of the API.
type route struct {
	action  string // an Action, or a listing
	minRole string
}

// routes is the whole API surface: path, then method.
var routes = map[string]map[string]route{
	"/": {
		http.MethodGet:    {string(ActionStatus), RoleViewer},
		http.MethodPatch:  {string(ActionPowerOn), RoleOperator},
		http.MethodDelete: {string(ActionPowerOff), RoleOperator},
		http.MethodPut:    {string(ActionRestart), RoleOperator},
	},
	"/nodes":  {http.MethodGet: {"list_nodes", RoleViewer}},
	"/groups": {http.MethodGet: {"list_groups", RoleViewer}},
}

// Audit actions for the listings.
const (
	auditListNodes  = "list_nodes"
	auditListGroups = "list_groups"
)

// Serve answers one request. Every request is recorded in the audit log,
// rejected ones included; actions are recorded before any command starts.
func (h *Handler) Serve(ctx context.Context, req *Request) *Response {
	start := h.now()
	rec := &RequestRecord{
		ID:          NewRequestID(start),
		Time:        start,
		Transport:   req.Transport,
		TransportID: req.TransportID,
		RemoteAddr:  req.RemoteAddr,
		Method:      req.Method,
		Path:        req.Path,
		Query:       req.RawQuery,
	}
	resp := h.serve(ctx, req, rec)
	rec.Duration = h.now().Sub(start)
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	resp.Header.Set("X-Request-Id", rec.ID)
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Cache-Control", "no-store")
	h.log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("id", rec.ID),
		slog.String("transport", rec.Transport),
		slog.String("remote", rec.RemoteAddr),
		slog.String("method", safeLog(rec.Method)),
		slog.String("path", safeLog(rec.Path)),
		slog.String("action", rec.Action),
		slog.String("caller", safeLog(rec.Caller)),
		slog.Int("nodes", rec.NodeCount),
		slog.Int("status", resp.Status),
		slog.Duration("duration", rec.Duration),
		slog.String("error", rec.Error),
	)
	return resp
}

// serve routes the request and makes sure exactly one audit record is
// written (or begun and finished) for it.
func (h *Handler) serve(ctx context.Context, req *Request, rec *RequestRecord) *Response {
	rt, caller, err := h.admit(req)
	rec.Caller, rec.Role, rec.Action = caller.Subject, caller.Role, rt.action
	if err != nil {
		return h.reject(ctx, rec, err)
	}
	switch rt.action {
	case auditListNodes:
		return h.finishListing(ctx, rec, encodeNodes(h.cfg.Runner.Nodes()))
	case auditListGroups:
		return h.finishListing(ctx, rec, encodeGroups(h.cfg.Runner.Groups()))
	}
	action := Action(rt.action)
	targets, err := h.targets(req.RawQuery)
	if err != nil {
		return h.reject(ctx, rec, err)
	}
	return h.runAction(ctx, rec, action, targets)
}

// admit applies the checks every request passes before it does anything:
// size limits, the token, the route and the role.
func (h *Handler) admit(req *Request) (route, Caller, error) {
	if len(req.RawQuery) > h.cfg.MaxQueryBytes {
		return route{}, Caller{}, Errorf(ETOOLARGE, "query is %d bytes; the limit is %d: use hostlist ranges or groups", len(req.RawQuery), h.cfg.MaxQueryBytes)
	}
	if req.BodyTooBig {
		return route{}, Caller{}, Errorf(ETOOLARGE, "request body is too large: the API takes no body")
	}
	caller, err := h.tokens.verify(h.cfg.Secret, req.Header.Get("Authorization"), h.now(), h.cfg.Leeway)
	if err != nil {
		return route{}, Caller{}, err
	}
	methods, ok := routes[req.Path]
	if !ok {
		return route{}, caller, Errorf(ENOTFOUND, "no route %s: the API serves /, /nodes and /groups", quoteIfOdd(req.Path))
	}
	rt, ok := methods[req.Method]
	if !ok {
		return route{}, caller, &Error{Code: EMETHOD, Message: "method " + quoteIfOdd(req.Method) + " is not allowed on " + req.Path + ": use " + allowed(methods), Allow: allowed(methods)}
	}
	if caller.Role == RoleViewer && rt.minRole == RoleOperator {
		return rt, caller, Errorf(EFORBIDDEN, "%s %s needs the operator role; this token has the viewer role", req.Method, req.Path)
	}
	return rt, caller, nil
}

func allowed(methods map[string]route) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		if _, ok := methods[m]; ok {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// targets reads nodes= and groups= into the unique node names to act on.
func (h *Handler) targets(rawQuery string) ([]string, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, Errorf(EINVALID, "query does not parse: %v", err)
	}
	for k := range q {
		if k != "nodes" && k != "groups" {
			return nil, Errorf(EINVALID, "unknown query parameter %s: use nodes=<hostlist> and groups=<names>", quoteIfOdd(k))
		}
	}
	var names []string
	seen := make(map[string]struct{})
	add := func(n string) error {
		if _, ok := seen[n]; ok {
			return nil
		}
		if len(seen) >= h.cfg.HostlistCap {
			return Errorf(EINVALID, "request names more than %d nodes", h.cfg.HostlistCap)
		}
		seen[n] = struct{}{}
		names = append(names, n)
		return nil
	}
	for _, v := range q["nodes"] {
		expanded, err := ExpandHostlist(v, h.cfg.HostlistCap)
		if err != nil {
			return nil, Errorf(EINVALID, "nodes: %v", err)
		}
		for _, n := range expanded {
			if err := add(n); err != nil {
				return nil, err
			}
		}
	}
	if gs := q["groups"]; len(gs) > 0 {
		byName := make(map[string][]string)
		for _, g := range h.cfg.Runner.Groups() {
			byName[g.Name] = g.Nodes
		}
		for _, v := range gs {
			groups, err := ExpandHostlist(v, h.cfg.HostlistCap)
			if err != nil {
				return nil, Errorf(EINVALID, "groups: %v", err)
			}
			for _, g := range groups {
				members, ok := byName[g]
				if !ok {
					return nil, Errorf(EINVALID, "group %s is not defined: GET /groups lists the groups", quoteIfOdd(g))
				}
				for _, n := range members {
					if err := add(n); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	if len(names) == 0 {
		return nil, Errorf(EINVALID, "no nodes given: add ?nodes=<hostlist> or ?groups=<names>")
	}
	return names, nil
}

// runAction records the request ahead, runs the commands, records each
// result as it arrives and answers one element per node in request order.
func (h *Handler) runAction(ctx context.Context, rec *RequestRecord, action Action, names []string) *Response {
	rec.NodeCount = len(names)
	rec.State = RequestRunning
	if err := h.cfg.Audit.BeginRequest(ctx, rec); err != nil {
		// The refusal is this log line, not an audit row: a second write
		// would fail the same way, and while another process holds the
		// lock it would keep the caller waiting a second busy timeout.
		h.log.Error("audit log unavailable: nothing ran", "id", rec.ID, "err", err)
		refusal := Errorf(EUNAVAILABLE, "audit log unavailable, so nothing ran: check the server log and the audit_db path")
		rec.Error = ErrorMessage(refusal)
		return h.errorResponse(refusal)
	}
	results := make(map[string]*Result, len(names))
	auditFailures := 0
	h.cfg.Runner.Run(ctx, action, names, func(r Result) {
		res := r
		results[r.Node] = &res
		// The results must reach the log even when the caller has gone.
		if err := h.cfg.Audit.RecordResult(context.WithoutCancel(ctx), rec.ID, &res); err != nil {
			auditFailures++
			// The server log keeps what the audit log could not.
			h.log.Error("result not recorded in the audit log", "id", rec.ID, "node", r.Node,
				"platform", r.Platform, "action", string(r.Action), "state", r.State, "success", r.Success,
				"exit_code", r.ExitCode, "timed_out", r.TimedOut, "duration", r.Duration,
				"error", safeLog(r.Error), "err", err)
		}
	})
	ordered := make([]*Result, 0, len(names))
	for _, n := range names {
		r := results[n]
		if r == nil { // a runner bug: never answer without the node
			r = &Result{Node: n, Platform: "missing", Action: action, ExitCode: -1, State: notRunState(action), Error: "internal error: no result"}
		}
		ordered = append(ordered, r)
	}
	rec.Status = http.StatusOK
	if auditFailures > 0 {
		rec.Error = pluralf(auditFailures, "result was not recorded", "results were not recorded")
	}
	rec.Duration = h.now().Sub(rec.Time)
	if err := h.cfg.Audit.FinishRequest(context.WithoutCancel(ctx), rec); err != nil {
		h.log.Error("request not finished in the audit log: its row stays running until the next start marks it interrupted",
			"id", rec.ID, "status", rec.Status, "nodes", rec.NodeCount, "error", rec.Error, "err", err)
	}
	return &Response{Status: http.StatusOK, Body: encodeCommands(ordered)}
}

func notRunState(a Action) string {
	if a == ActionStatus {
		return StateUnknown
	}
	return StateFailed
}

// finishListing audits a listing; a listing that cannot be audited is not
// answered.
func (h *Handler) finishListing(ctx context.Context, rec *RequestRecord, body []byte) *Response {
	rec.Status = http.StatusOK
	rec.State = RequestDone
	rec.Duration = h.now().Sub(rec.Time)
	if err := h.cfg.Audit.RecordRequest(context.WithoutCancel(ctx), rec); err != nil {
		h.log.Error("audit log unavailable", "id", rec.ID, "err", err)
		refusal := Errorf(EUNAVAILABLE, "audit log unavailable: check the server log and the audit_db path")
		rec.Status, rec.Error = http.StatusServiceUnavailable, ErrorMessage(refusal)
		return h.errorResponse(refusal)
	}
	return &Response{Status: http.StatusOK, Body: body}
}

// reject audits and answers a request refused before anything ran.
func (h *Handler) reject(ctx context.Context, rec *RequestRecord, err error) *Response {
	resp := h.errorResponse(err)
	rec.Status = resp.Status
	rec.Error = ErrorMessage(err)
	rec.State = RequestDone
	rec.Duration = h.now().Sub(rec.Time)
	if aerr := h.cfg.Audit.RecordRequest(context.WithoutCancel(ctx), rec); aerr != nil {
		h.log.Error("audit log unavailable: rejection not recorded", "id", rec.ID, "status", resp.Status, "err", aerr)
	}
	return resp
}

func (h *Handler) errorResponse(err error) *Response {
	status := ErrorStatus(err)
	if status == http.StatusInternalServerError {
		h.log.Error("internal error", "err", err)
	}
	resp := &Response{Status: status, Header: http.Header{}, Body: encodeError(status, ErrorMessage(err))}
	var e *Error
	if errors.As(err, &e) && e.Allow != "" {
		resp.Header.Set("Allow", e.Allow)
	}
	return resp
}

// NewRequestID returns a 26-character, time-sortable, random id (ULID
// layout: 48-bit millisecond time, 80 random bits, Crockford base32).
func NewRequestID(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	// 128 bits as 26 base32 digits (the first carries 3 bits).
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// quoteIfOdd quotes s when it holds anything but plain printable ASCII,
// so hostile bytes are shown, not interpreted, and caps its length.
func quoteIfOdd(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}

func safeLog(s string) string {
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
