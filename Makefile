# flight-power: build, test, run and deploy. `make help` lists the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

# make run: a throwaway demo server
STATE   ?= state
LISTEN  ?= 127.0.0.1:6302

PREFIX  ?= /opt/flight

# Debian packages the tests drive for real (installed by `make deps` when missing).
TEST_PKGS := sqlite3 openipmi ipmitool awscli

.PHONY: help build test test-unit deps run bench fuzz soak lint fmt vet clean install lambda bootstrap build-FlightPowerFunction

help:
	@echo "make build    build bin/flight-power-server and bin/flight-power"
	@echo "make run      start a demo server on $(LISTEN) with simulated nodes"
	@echo "make test     install what the tests need, then run every test"
	@echo "make bench    run the benchmarks and print a table"
	@echo "make fuzz     run every fuzz target for FUZZTIME (default $(FUZZTIME)) each"
	@echo "make soak     steady mixed load on the real server for SOAK_DURATION (default $(SOAK_DURATION)); checks memory, fds, goroutines, audit"
	@echo "make lint     gofmt and go vet"
	@echo "make install  lay out $(PREFIX) and the systemd unit (as root)"
	@echo "make lambda   bin/bootstrap-arm64 and bin/bootstrap-amd64 for AWS Lambda (sam build uses build-FlightPowerFunction)"

build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/flight-power-server ./cmd/local
	@if [ -d cmd/client ] && ls cmd/client/*.go >/dev/null 2>&1; then \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/flight-power ./cmd/client; fi

# deps installs the Debian packages the tests use when any is missing.
deps:
	@missing=""; for p in $(TEST_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: deps lint build
	$(GO) test -count=1 -timeout 15m ./...

test-unit:
	$(GO) test -count=1 ./handler/ ./runner/ ./store/

lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

run: build
	@mkdir -p $(STATE)
	@bin/flight-power-server init --demo --config $(STATE)/power-server.conf \
		--audit_db $(STATE)/audit.db --scripts_dir $(STATE) --listen $(LISTEN) >/dev/null
	@tok=$$(bin/flight-power-server token --config $(STATE)/power-server.conf --subject demo --days 7) || exit 1; \
	url=http://$(LISTEN); \
	printf 'base_url: %s\njwt_token: %s\n' "$$url" "$$tok" > $(STATE)/client.yaml; \
	echo; \
	echo "flight-power demo server: $$url  (16 simulated nodes, demo[01-16])"; \
	echo "config $(STATE)/power-server.conf   audit log $(STATE)/audit.db"; \
	echo; \
	echo "token: $$tok"; \
	echo; \
	echo "  curl -s -H \"Authorization: Bearer $$tok\" '$$url/?nodes=demo%5B01-04%5D'"; \
	if [ -x bin/flight-power ]; then echo "  FLIGHT_POWER_CONFIG=$(STATE)/client.yaml bin/flight-power status 'demo[01-16]'"; fi; \
	echo "  sqlite3 $(STATE)/audit.db 'SELECT * FROM audit ORDER BY time DESC LIMIT 10'"; \
	echo; \
	echo "Ctrl-C stops the server."; \
	exec bin/flight-power-server serve --config $(STATE)/power-server.conf

# Debian packages the benchmarks drive, installed by `make bench` when missing.
BENCH_PKGS := wrk sqlite3 openipmi ipmitool
# BENCH_ARGS passes flags to the harness, e.g. BENCH_ARGS='-only nodes,history'.
BENCH_ARGS ?=

# bench prints the table of BENCHMARKS.md; it is not part of `make test`.
bench: build
	@$(MAKE) --no-print-directory deps TEST_PKGS="$(BENCH_PKGS)"
	$(GO) run ./cmd/local/internal/bench -server bin/flight-power-server $(BENCH_ARGS)

# Every fuzz target, as package:Name. `go test` (so `make test`) runs their
# seeds, from f.Add and <package>/testdata/fuzz/<Name>/; `make fuzz` fuzzes
# each for FUZZTIME. An input that fails is left in testdata/fuzz/<Name>/:
# fix the bug and commit the file as a regression case. New inputs are
# minimised for at most FUZZMINTIME: go's default, 60s, spends a short run
# shrinking one large input (the shipped topology) instead of fuzzing.
FUZZTIME     ?= 30s
FUZZMINTIME  ?= 5s
FUZZ_TARGETS := handler:FuzzExpandHostlist handler:FuzzServe runner:FuzzLoad \
	cmd/lambda:FuzzDecodeEvent cmd/local:FuzzParseConfLine cmd/local:FuzzConfFile

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name (./$$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./$$pkg; \
	done

# make soak: SOAK_RATE requests a second of mixed routes, tokens and
# rejections against the real server for SOAK_DURATION; fails if its RSS,
# open fds or goroutines grow, or any request is not in the audit log.
# Not part of make test (cmd/local/soak_test.go, build tag soak).
SOAK_DURATION ?= 10m
SOAK_RATE     ?= 50

soak: deps
	SOAK_DURATION=$(SOAK_DURATION) SOAK_RATE=$(SOAK_RATE) $(GO) test -tags soak -count=1 -run '^TestSoak$$' -timeout 0 -v ./cmd/local/

install: build
	install -d -m 0755 $(DESTDIR)$(PREFIX)/opt/power-server/bin $(DESTDIR)$(PREFIX)/etc/power-server \
		$(DESTDIR)$(PREFIX)/var/lib/power-server $(DESTDIR)$(PREFIX)/opt/power-client/etc
	install -m 0755 bin/flight-power-server $(DESTDIR)$(PREFIX)/opt/power-server/bin/flight-power-server
	@if [ -x bin/flight-power ]; then install -D -m 0755 bin/flight-power $(DESTDIR)$(PREFIX)/opt/power-client/bin/flight-power; fi
	@[ -e $(DESTDIR)$(PREFIX)/opt/power-client/etc/config.yaml ] || install -m 0640 dist/config.yaml $(DESTDIR)$(PREFIX)/opt/power-client/etc/config.yaml
	@[ -e $(DESTDIR)$(PREFIX)/etc/power-server/topology.yaml ] || install -m 0644 cmd/local/etc/topology.yaml $(DESTDIR)$(PREFIX)/etc/power-server/topology.yaml
	install -D -m 0644 dist/flight-power-server.service $(DESTDIR)/etc/systemd/system/flight-power-server.service
	@if [ -z "$(DESTDIR)" ] && [ ! -e $(PREFIX)/etc/power-server.conf ]; then \
		$(PREFIX)/opt/power-server/bin/flight-power-server init --config $(PREFIX)/etc/power-server.conf; fi
	@echo "installed. Next: systemctl daemon-reload && systemctl enable --now flight-power-server"

# AWS Lambda (provided.al2023): bootstrap is static and built without the
# RPC mode's net/rpc (lambda.norpc) and net/http's HTTP/2 (the Runtime API
# is HTTP/1.1 on loopback). -gcflags=all=-l (no inlining) keeps the
# stripped arm64 binary under 10 MB (10.9 MB with inlining, see
# BENCHMARKS.md); the function's time goes to its commands, not to calls.
# The tests and make bench build through `make bootstrap`, so these flags
# are the only ones.
LAMBDA_TOPOLOGY ?= cmd/local/etc/topology.yaml
LAMBDA_ARCH     ?= arm64
LAMBDA_TAGS     := lambda.norpc,nethttpomithttp2
LAMBDA_FLAGS    := -trimpath -tags $(LAMBDA_TAGS) -gcflags=all=-l -ldflags '$(LDFLAGS)'
BOOTSTRAP       ?= bin/bootstrap-$(LAMBDA_ARCH)

lambda:
	$(MAKE) --no-print-directory bootstrap LAMBDA_ARCH=arm64
	$(MAKE) --no-print-directory bootstrap LAMBDA_ARCH=amd64

bootstrap:
	@mkdir -p $(dir $(BOOTSTRAP))
	GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build $(LAMBDA_FLAGS) -o $(BOOTSTRAP) ./cmd/lambda

# sam build (template.yaml, BuildMethod: makefile) runs this with
# ARTIFACTS_DIR set: bootstrap and the topology packaged beside it, checked
# first so a broken topology fails the build, not the deployed function.
# Another topology: LAMBDA_TOPOLOGY=/path/to/topology.yaml sam build
build-FlightPowerFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run sam build"; exit 2; }
	$(GO) run ./cmd/local check --config /nonexistent/power-server.conf $(LAMBDA_TOPOLOGY)
	$(MAKE) --no-print-directory bootstrap BOOTSTRAP=$(ARTIFACTS_DIR)/bootstrap
	install -m 0644 $(LAMBDA_TOPOLOGY) $(ARTIFACTS_DIR)/topology.yaml

clean:
	rm -rf bin $(STATE)
