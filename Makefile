# Sluice: one Go module per folder, tied together by go.work. Every target
# loops over the modules, because `go test ./...` at the root does not cross
# module borders.

MODULES     := client pkg pkg/dev limiter gateway worker
GO          ?= go
VERSITYGW   := github.com/versity/versitygw/cmd/versitygw@v1.8.0
NATSCLI     := github.com/nats-io/natscli/nats@v0.5.0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS  ?= -race -count=1 -timeout 20m
BENCH       ?= .
BENCH_FLAGS ?= -run '^$$' -bench '$(BENCH)' -benchmem -benchtime 2s

BENCH_E2E_FLAGS ?=

.PHONY: build run test bench bench-e2e lint tidy clean tools nats-cli

build:
	@mkdir -p bin
	$(GO) build -o bin/gateway ./gateway/cmd/gateway
	$(GO) build -o bin/worker ./worker/cmd/worker
	$(GO) build -o bin/sluice-dev ./pkg/dev/cmd/sluice-dev
	$(GO) build -o bin/sluice-load ./pkg/dev/cmd/sluice-load
	$(GO) build -o bin/sluice ./pkg/cmd/sluice
	$(GO) build -o bin/sluice-bench ./pkg/dev/cmd/sluice-bench

# Pinned tools, built once into .bin/ (versitygw takes about two minutes).
tools: .bin/versitygw

.bin/versitygw:
	GOBIN=$(CURDIR)/.bin $(GO) install $(VERSITYGW)

.bin/staticcheck:
	GOBIN=$(CURDIR)/.bin $(GO) install $(STATICCHECK)

nats-cli: .bin/nats

.bin/nats:
	GOBIN=$(CURDIR)/.bin $(GO) install $(NATSCLI)

run: build tools
	./bin/sluice-dev

test: tools
	@set -e; for m in $(MODULES); do \
		echo "== $$m"; \
		(cd $$m && $(GO) test $(TEST_FLAGS) ./...); \
	done

bench: tools
	@set -e; for m in $(MODULES); do \
		echo "== $$m"; \
		(cd $$m && $(GO) test $(BENCH_FLAGS) ./...); \
	done

# End-to-end: the real servers and binaries, one table against the ceiling,
# written with its chart to docs/ (a few minutes; flags: bin/sluice-bench -h).
bench-e2e: build tools
	./bin/sluice-bench $(BENCH_E2E_FLAGS)

lint: .bin/staticcheck
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@set -e; for m in $(MODULES); do (cd $$m && GOOS=darwin $(GO) vet ./...); done
	@set -e; for m in $(MODULES); do (cd $$m && $(CURDIR)/.bin/staticcheck ./...); done

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf bin .sluice
