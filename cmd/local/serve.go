package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/openflighthpc/flight-power/handler"
	"github.com/openflighthpc/flight-power/runner"
	"github.com/openflighthpc/flight-power/store"
)

// runServe runs the HTTP daemon until SIGTERM or SIGINT, then lets running
// requests finish (up to shutdown_grace) and records every outcome.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg := newConfigFlags("serve", stderr)
	if err := cfg.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.fs.NArg() > 0 {
		return usageError{fmt.Errorf("serve takes no arguments, got %q", cfg.fs.Args())}
	}
	log, err := cfg.logger(stderr, false)
	if err != nil {
		return err
	}
	for _, w := range cfg.warnings() {
		log.Warn(w)
	}
	if cfg.secret == "" {
		return usageError{fmt.Errorf("no jwt_shared_secret: set it in %s (flight-power-server init writes one) or %s_JWT_SHARED_SECRET", cfg.path, envPrefix)}
	}
	if err := handler.CheckSecret([]byte(cfg.secret)); err != nil {
		return usageError{err}
	}

	topo, err := runner.LoadFile(cfg.topology)
	if err != nil {
		return usageError{fmt.Errorf("load topology: %w", err)}
	}
	for _, p := range topo.Check() {
		log.Warn("topology: " + p.Describe(cfg.topology))
	}

	audit, err := store.Open(ctx, cfg.auditDB, store.Options{JournalMode: cfg.auditJournal, Logger: log})
	if err != nil {
		return err
	}
	defer audit.Close()
	if n, err := audit.MarkInterrupted(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("requests cut short by the last stop marked interrupted", "count", n)
	}

	run := runner.New(topo, runner.Options{
		Workers:        cfg.workers,
		DefaultTimeout: cfg.commandTimeout,
		ScriptsDir:     cfg.scriptsDir,
		BaseEnv:        commandEnv(os.Environ(), cfg.secret, cfg.fs),
		Redact:         []string{cfg.secret},
		Logger:         log.With("component", "runner"),
	})
	h, err := handler.New(handler.Config{
		Secret: []byte(cfg.secret),
		Runner: run,
		Audit:  audit,
		Logger: log.With("component", "handler"),
	})
	if err != nil {
		return usageError{err}
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}

	// Commands outlive the client connection that asked for them: they stop
	// only at their own deadline or when the shutdown grace runs out.
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	srv := &http.Server{
		Handler:           httpAdapter(h, runCtx),
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	served := make(chan error, 1)
	go func() {
		if cfg.tlsCert != "" || cfg.tlsKey != "" {
			served <- srv.ServeTLS(ln, cfg.tlsCert, cfg.tlsKey)
			return
		}
		served <- srv.Serve(ln)
	}()
	scheme := "http"
	if cfg.tlsCert != "" {
		scheme = "https"
	}
	log.Info("flight-power-server listening", "addr", ln.Addr().String(), "scheme", scheme,
		"version", version, "nodes", len(topo.Nodes()), "audit_db", cfg.auditDB, "workers", cfg.workers)
	if log.Enabled(ctx, slog.LevelDebug) {
		go logRuntime(runCtx, log, runtimeLogEvery)
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case sig := <-sigs:
		log.Info("stopping: no new requests; running commands may finish", "signal", sig.String(), "grace", cfg.shutdownGrace)
	case <-ctx.Done():
	}

	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownGrace)
	defer cancel()
	err = srv.Shutdown(graceCtx)
	if err != nil {
		// Out of grace: kill what still runs; each node is still reported
		// and recorded before its request answers.
		log.Warn("shutdown grace over: killing running commands", "err", err)
		cancelRuns()
		finish, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		_ = srv.Shutdown(finish)
	}
	log.Info("stopped")
	return nil
}

// runtimeLogEvery is how often a server at log_level=debug logs its
// goroutine count and heap, to watch a long run for leaks.
const runtimeLogEvery = 5 * time.Second

// logRuntime logs the goroutine count and heap every period until ctx ends.
func logRuntime(ctx context.Context, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var m runtime.MemStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		runtime.ReadMemStats(&m)
		log.Debug("runtime", "goroutines", runtime.NumGoroutine(), "heap_bytes", m.HeapAlloc, "sys_bytes", m.Sys, "gc_runs", m.NumGC)
	}
}

// maxBodyBytes is read from a request body: the API takes none.
const maxBodyBytes = handler.DefaultMaxBodyBytes

// maxHeaderBytes bounds the request line and headers net/http reads before
// the handler sees anything; beyond it net/http answers 431 itself, with no
// X-Request-Id and no audit row. It is well above the handler's own query
// limit, so a query too long for the handler (over 64 KiB, say a long list
// of node names) is refused by the handler: 413 with the reason, the
// request id and an audit row.
const maxHeaderBytes = 1 << 20

// httpAdapter maps net/http onto the transport-neutral handler.
func httpAdapter(h *handler.Handler, runCtx context.Context) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		req := &handler.Request{
			Method:     r.Method,
			Path:       r.URL.Path,
			RawQuery:   r.URL.RawQuery,
			Header:     r.Header,
			Body:       body,
			BodyTooBig: len(body) > maxBodyBytes || err != nil,
			RemoteAddr: r.RemoteAddr,
			Transport:  handler.TransportHTTP,
		}
		resp := h.Serve(runCtx, req)
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
	})
}
