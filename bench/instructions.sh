#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind (callgrind): a figure that does not move
# with the machine's load, for comparing two versions of the gateway on a shared, noisy host
# where req/s and CPU time drift by 15-20 % between runs.
#
# It starts the nginx mock of run_gateway_bench.sh and `bastion serve` under callgrind with
# instrumentation off, warms up with 40 requests, counts the instructions of N more (over four
# kept-alive connections; every thread of the process is counted, the ledger writer included), and
# prints "<mode> Ir/request". Python runs some 50x slower under valgrind, so keep N in the hundreds.
#
# Usage: bench/instructions.sh [N (400)] [modes ("chat stream")]
# Environment: BENCH_BASTION_YAML_EXTRA (appended to the generated config, as in
#   run_gateway_bench.sh), BENCH_PYTHON (the interpreter, default .venv/bin/python; set PYTHONPATH to
#   count another checkout's code with the same environment).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
N=${1:-400}
MODES=${2:-chat stream}
PYTHON=${BENCH_PYTHON:-$REPO_DIR/.venv/bin/python}
for tool in valgrind callgrind_control callgrind_annotate nginx curl; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is needed (apt-get install valgrind nginx curl)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bastion-instr.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {
  local i
  for ((i = 0; i < 1200; i++)); do curl -sf "$1" >/dev/null && return 0; sleep 0.25; done
  echo "instructions.sh: $1 did not answer" >&2
  exit 1
}

MOCK_PORT=$(free_port)
sed -e "s#@PORT@#$MOCK_PORT#g" -e "s#@TMP@#$TMP#g" "$BENCH_DIR/mock_upstream.nginx.conf" >"$TMP/nginx.conf"
nginx -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/healthz"

cat >"$TMP/bastion.yaml" <<EOF
models:
  - name: bench-model
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: "sk-bench"}
  - name: bench-stream
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:$MOCK_PORT/stream/v1", api_key: "sk-bench"}
local: {enabled: false}
logging: {level: warning}
auth: {enabled: false}
data_dir: "$TMP/data"
EOF
if [[ -n ${BENCH_BASTION_YAML_EXTRA:-} ]]; then cat "$BENCH_BASTION_YAML_EXTRA" >>"$TMP/bastion.yaml"; fi

cat >"$TMP/drive.py" <<'EOF'
import asyncio, sys
import httpx
url, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = {
    "model": "bench-stream" if mode == "stream" else "bench-model",
    "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in at most two sentences."},
        {"role": "user", "content": "Summarize the benefits of connection pooling for an HTTP client."},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
    "stream": mode == "stream",
}
async def main() -> None:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        async def worker(n: int) -> None:
            for _ in range(n):
                response = await client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200, response.text
        await asyncio.gather(*(worker(count // 4) for _ in range(4)))
asyncio.run(main())
EOF

for mode in $MODES; do
  port=$(free_port)
  out=$TMP/callgrind.$mode.out
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$PYTHON" -c 'import sys; from bastion.cli.main import app; sys.argv[0] = "bastion"; app()' serve --config "$TMP/bastion.yaml" --port "$port" >"$TMP/bastion.$mode.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/healthz"
  "$PYTHON" "$TMP/drive.py" "http://127.0.0.1:$port" 40 "$mode"
  callgrind_control -i on "$pid" >/dev/null 2>&1
  "$PYTHON" "$TMP/drive.py" "http://127.0.0.1:$port" "$N" "$mode"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  dump=$(ls -S "$out"* | head -n 1)
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  printf '%-6s %10d Ir/request  (%d requests)\n' "$mode" $((total / N)) "$N"
done
