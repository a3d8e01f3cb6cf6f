# tokenwarden: `make run` starts the stack, `make test` runs every test.
SHELL := /bin/bash

TEMPORAL_CLI_VERSION  := v1.5.1
STATICCHECK_VERSION   := v0.8.2
WORKFLOWCHECK_VERSION := v0.6.0

BIN      := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal

# Tests find the dev server binary here.
export TOKENWARDEN_TEST_TEMPORAL_BIN := $(TEMPORAL)

.PHONY: help run demo test lint build clean soak bench record-histories

help:
	@echo "make run    start the Temporal dev server (Web UI :8233) and the worker; Ctrl-C stops"
	@echo "make demo   the same plus a fake OAuth2 provider and three short-lived demo credentials"
	@echo "make test   run every test (starts the servers it needs)"
	@echo "make lint   gofmt, generated mocks current, go vet, staticcheck, workflowcheck"
	@echo "make build  build bin/worker, bin/starter, bin/fakeoauth"
	@echo "make soak   bounded soak: 100 credentials, 5 minutes, worker kill -9s, provider faults, store outages, clock skew (SOAK_FLAGS=...)"
	@echo "make bench  benchmark: the engine's ceiling, then 2000 credentials asking for 35% of it (BENCH_FLAGS=...)"
	@echo "make record-histories  re-record the workflow histories make test replays (HISTORY_GEN=v2 adds a generation)"

# The pinned temporal CLI, built from its Go module (about 3 minutes the first time).
$(TEMPORAL):
	@echo "building the temporal CLI $(TEMPORAL_CLI_VERSION) into bin/ (first time only)..."
	GOBIN=$(BIN) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

build:
	go build -o $(BIN)/ ./worker ./starter ./internal/provider/oauth2/oauth2test/cmd/fakeoauth

run: $(TEMPORAL) build
	scripts/stack.sh run

demo: $(TEMPORAL) build
	scripts/stack.sh demo

test: $(TEMPORAL)
	go test -race -count=1 -timeout 20m ./...

# Bounded soak (not part of `make test`): a private dev server, the fake provider and the
# worker, with kill -9s, injected provider faults, store outages and skewed worker clocks;
# fails on refresh-token reuse or a lost token. The skew needs the worker built with
# -tags faultinject, into a temporary directory (never bin/). About 6 minutes with the
# defaults; e.g. SOAK_FLAGS='-duration 1m -json'.
soak: $(TEMPORAL)
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	go build -tags faultinject -o "$$d/worker" ./worker && \
	go run ./internal/loadtest/soak -temporal $(TEMPORAL) -worker "$$d/worker" $(SOAK_FLAGS)

# Benchmark (not part of `make test`): a private dev server, the fake provider and the
# worker; the engine's ceiling on that server, then 2000 credentials whose access tokens
# live 60 s, measured for 3 minutes once all have made their first refresh. Prints the
# figures beside their targets (PASS/MISS) and never fails on a MISS; 10 minutes or more.
# E.g. BENCH_FLAGS='-credentials 10000'.
bench: $(TEMPORAL) build
	go run ./internal/loadtest/bench -temporal $(TEMPORAL) -worker $(BIN)/worker $(BENCH_FLAGS)

# Re-record the workflow histories that `make test` replays (workflows/testdata/histories):
# a private dev server, a worker in the test process with the real activities, the fake
# providers on loopback; about 20 s. It re-records the newest generation and refuses when
# the change since then is incompatible or behind workflow.GetVersion; HISTORY_GEN=v2
# adds a generation instead (README: Versioning policy).
record-histories: $(TEMPORAL)
	TOKENWARDEN_RECORD_HISTORIES=1 TOKENWARDEN_RECORD_GENERATION=$(HISTORY_GEN) \
	  go test -count=1 -parallel 16 -timeout 10m -run '^TestRecordHistories$$' -v ./workflows/

$(BIN)/staticcheck:
	GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BIN)/workflowcheck:
	GOBIN=$(BIN) go install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

lint: $(BIN)/staticcheck $(BIN)/workflowcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	scripts/check-mocks.sh
	go vet ./...
	$(BIN)/staticcheck ./...
	$(BIN)/workflowcheck -config workflowcheck.config.yaml ./...

clean:
	rm -rf $(BIN) .demo
