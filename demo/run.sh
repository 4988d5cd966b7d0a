#!/usr/bin/env bash
# Starts the demo in the foreground: the mock LLM, tokenmeter and Envoy.
# Ctrl-C (or any of the three exiting) stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
stop() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

./bin/mockllm -listen 127.0.0.1:8081 &
pids+=($!)
./bin/tokenmeter serve --config demo/tokenmeter.yaml &
pids+=($!)
./.tools/bin/envoy -c envoy/envoy.yaml --log-level warn --disable-hot-restart &
pids+=($!)

cat <<'MSG'

tokenmeter demo is starting. Try:
  curl -s localhost:10000/v1/chat/completions -H 'Authorization: Bearer tmk_demo_key' \
       -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
  curl -sN localhost:10000/v1/chat/completions -H 'Authorization: Bearer tmk_demo_key' \
       -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}'
  curl -s localhost:9464/metrics | grep ^tokenmeter_
  open http://localhost:9464/                       # the web page: spend and budgets
  ./bin/tokenmeter budgets list
  ./bin/tokenmeter keys create --name my-app --dimension project=demo   # a new key for project demo
  ./bin/tokenmeter usage report --from $(date -u +%F) --to $(date -u -d tomorrow +%F) --group-by project,model
  ./bin/tokenmeter usage statement --month $(date -u +%Y-%m) --dimension project --value demo
Ctrl-C stops everything.

MSG
wait -n
