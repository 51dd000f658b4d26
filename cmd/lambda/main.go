// Command bootstrap is flight-power on AWS Lambda (provided.al2023): it maps
// API Gateway HTTP API, REST API and Function URL events onto the same
// transport-neutral handler the HTTP daemon serves, and answers in the
// event's own response shape.
//
// Everything is built before lambda.Start, so a missing secret, a bad
// topology or an unusable audit database fails INIT with one clear log line
// instead of failing the first request.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/runner"
	"github.com/openflighthpc/flight-power/store"
)

// version is stamped by the Makefile with -ldflags -X.
var version = "dev"

func main() {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	a, closeAudit, err := setup(context.Background(), os.Getenv, os.Environ(), filepath.Dir(exe), os.Stdout, os.Stderr)
	if err != nil {
		// Lambda reports INIT failed; this line says why.
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("flight-power init failed: "+err.Error(), "version", version)
		os.Exit(1)
	}
	lambda.StartWithOptions(a, lambda.WithEnableSIGTERM(func() { _ = closeAudit() }))
}

// setup builds the whole function from its environment: config, logger,
// topology, audit database, runner and handler.
func setup(ctx context.Context, getenv func(string) string, environ []string, exeDir string, stdout, stderr io.Writer) (*app, func() error, error) {
	cfg, err := loadConfig(getenv, exeDir)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(requestIDHandler{slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})})

	topo, err := runner.LoadFile(cfg.topology)
	if err != nil {
		return nil, nil, fmt.Errorf("load topology (%s): %w", envTopology, err)
	}
	for _, p := range topo.Check() {
		log.Warn("topology: " + p.Describe(cfg.topology))
	}

	st, err := store.Open(ctx, cfg.auditDB, store.Options{JournalMode: cfg.journalMode, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s)", err, envAuditDB)
	}
	if !cfg.auditShared {
		// /tmp is this execution environment's own: a request still
		// running there was cut short when a previous runtime process in
		// this environment died. On a shared path (EFS) the same rows may be
		// other instances' live requests, so they are left alone.
		n, err := st.MarkInterrupted(ctx)
		if err != nil {
			_ = st.Close()
			return nil, nil, err
		}
		if n > 0 {
			log.Warn("requests cut short by the last runtime process marked interrupted", "count", n)
		}
	}
	audit := newTeeAudit(st, stdout, cfg.secret, log.With("component", "audit"))

	run := runner.New(topo, runner.Options{
		Workers:        cfg.workers,
		DefaultTimeout: cfg.commandTimeout,
		ScriptsDir:     cfg.scriptsDir,
		BaseEnv:        commandEnv(environ, cfg.secret),
		Redact:         []string{cfg.secret},
		Logger:         log,
	})
	h, err := handler.New(handler.Config{
		Secret: []byte(cfg.secret),
		Runner: run,
		Audit:  audit,
		Logger: log.With("component", "handler"),
	})
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	log.Info("flight-power lambda ready", "version", version, "nodes", topo.NodeCount(),
		"topology", cfg.topology, "audit_db", cfg.auditDB, "journal_mode", cfg.journalMode,
		"audit_shared", cfg.auditShared, "request_timeout", cfg.requestTimeout, "finish_margin", cfg.finishMargin)
	return &app{
		handler:        h,
		log:            log,
		requestTimeout: cfg.requestTimeout,
		finishMargin:   cfg.finishMargin,
		now:            time.Now,
	}, st.Close, nil
}

// app answers invocations; it implements lambda.Handler.
type app struct {
	handler        *handler.Handler
	log            *slog.Logger
	requestTimeout time.Duration
	finishMargin   time.Duration
	now            func() time.Time
}

// Invoke maps one event to the handler and its answer back. A payload that
// is not an HTTP event is an invocation error (there is no response shape
// to answer it in); everything else is answered in the event's own shape.
func (a *app) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	start := a.now()
	kind, req, err := decodeEvent(payload)
	if err != nil {
		a.log.ErrorContext(ctx, "event not answered", "err", err, "bytes", len(payload))
		errType := "BadEvent" // an HTTP event that does not map
		if errors.Is(err, errUnsupportedEvent) {
			errType = "UnsupportedEvent"
		}
		return nil, messages.InvokeResponse_Error{Message: err.Error(), Type: errType}
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		req.TransportID = lc.AwsRequestID
	}
	deadline, hasDeadline := ctx.Deadline()
	rctx, cancel := context.WithDeadline(ctx, requestDeadline(start, deadline, hasDeadline, a.requestTimeout, a.finishMargin))
	defer cancel()
	resp := a.handler.Serve(rctx, req)
	out, err := encodeResponse(kind, resp)
	if err != nil {
		a.log.ErrorContext(ctx, "encode response", "err", err, "event", string(kind))
	}
	return out, err
}

// requestDeadline is when the commands of a request arriving at start must
// stop: the sooner of the invocation's own deadline and start+timeout, less
// a margin to kill what still runs, record every node as timed out and
// answer. The margin never takes more than half the time there is, so a
// short function timeout still runs commands.
func requestDeadline(start, invocationDeadline time.Time, hasDeadline bool, timeout, margin time.Duration) time.Time {
	budget := timeout
	if hasDeadline {
		budget = min(budget, invocationDeadline.Sub(start))
	}
	if budget <= 0 {
		return start
	}
	return start.Add(budget - min(margin, budget/2))
}

// requestIDHandler adds the Lambda request id to every log line written
// with an invocation's context.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
