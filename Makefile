# Sluice: one Go module per folder, tied together by go.work. Every target
# loops over the modules, because `go test ./...` at the root does not cross
# module borders.

MODULES     := pkg limiter gateway worker
GO          ?= go
VERSITYGW   := github.com/versity/versitygw/cmd/versitygw@v1.8.0
NATSCLI     := github.com/nats-io/natscli/nats@v0.5.0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS  ?= -race -count=1 -timeout 20m
BENCH       ?= .
BENCH_FLAGS ?= -run '^$$' -bench '$(BENCH)' -benchmem -benchtime 2s

.PHONY: build run test bench lint tidy clean tools nats-cli

build:
	@mkdir -p bin
	$(GO) build -o bin/gateway ./gateway/cmd/gateway
	$(GO) build -o bin/worker ./worker/cmd/worker
	$(GO) build -o bin/sluice-dev ./pkg/cmd/sluice-dev
	$(GO) build -o bin/sluice-load ./pkg/cmd/sluice-load
	$(GO) build -o bin/sluice ./pkg/cmd/sluice

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

lint: .bin/staticcheck
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@set -e; for m in $(MODULES); do (cd $$m && GOOS=darwin $(GO) vet ./...); done
	@set -e; for m in $(MODULES); do (cd $$m && $(CURDIR)/.bin/staticcheck ./...); done

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf bin .sluice
