# authflow — see README.md. `make help` lists the targets.
GO       ?= go
BIN      ?= bin/authflow
PKGS     ?= ./...
# testcontainers' Ryuk reaper image cannot be pulled here (no registry): tests clean up themselves.
export TESTCONTAINERS_RYUK_DISABLED := true

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## zero-setup demo: embedded JetStream + Graph emulator + worker + demo events
	@# The built binary, not `go run`: go run exits 1 whenever it is interrupted, so Ctrl-C would end in "make: Error 1".
	$(BIN) dev

.PHONY: build
build: ## build the authflow binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X github.com/authflow/authflow/worker.Version=$$(git describe --always --dirty 2>/dev/null)" -o $(BIN) ./cmd/authflow

.PHONY: test
test: ## vet and run every test (container tests skip without Docker, fail in CI), the concurrent packages also under -race
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 40m $(PKGS)
	$(GO) test -race -count=1 -timeout 20m ./graphclient/... ./worker/...

.PHONY: test-race
test-race: ## run the tests with the race detector
	$(GO) test -race -count=1 -timeout 60m $(PKGS)

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: emulator
emulator: ## run the Graph emulator on 127.0.0.1:8080 with token dev-token
	$(GO) run ./cmd/authflow emulator --listen 127.0.0.1:8080 --token dev-token

# Local images and the Docker compose cluster: see deploy/README.md. COMPOSE is the compose
# command: `docker compose` (v2) when that plugin answers, else `docker-compose` (v1); choose
# with `make compose-up COMPOSE=docker-compose` (or COMPOSE="docker compose").
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_ARGS := -p authflow -f deploy/compose.yaml

.PHONY: images
images: ## build the local images authflow:dev and authflow-nats:dev (FROM scratch, no registry)
	GO=$(GO) deploy/build-images.sh

.PHONY: compose-up
compose-up: images ## run 3 NATS JetStream nodes, the Graph emulator and 2 workers in Docker (COMPOSE=... picks v1 or v2)
	$(COMPOSE) $(COMPOSE_ARGS) up -d

.PHONY: compose-down
compose-down: ## stop the compose cluster and delete its volumes
	$(COMPOSE) $(COMPOSE_ARGS) down -v

.PHONY: bench
bench: build ## events and ingress micro-benchmarks, then authflow bench on this machine (~6 min; BENCH_FLAGS=... adds flags)
	$(GO) test -run '^$$' -bench . -benchmem ./events/
	$(GO) test -run '^$$' -bench BenchmarkIngress -benchtime 5s ./ingress/
	$(BIN) bench $(BENCH_FLAGS)
