#!/usr/bin/env bash
# Gateway throughput/latency benchmark (not a test: it prints numbers, it never
# passes or fails on them).
#
# Topology on a 2-core machine (see bench/README.md for the why):
#   core 0 (BENCH_GATEWAY_CPU): the gateway under test, one worker
#   core 1 (BENCH_LOAD_CPU):    wrk, one thread
#   core 1 (BENCH_MOCK_CPU):    nginx, one worker, answering with static bodies
#
# For every target (mock alone, Bastion, LiteLLM's proxy when its venv exists,
# any --extra command) and every mode (chat, stream; embed on request) it runs:
#   warm-up   wrk -c16 for BENCH_WARMUP (discarded)
#   req/s     wrk -t1 -c16 -d BENCH_DURATION
#   latency   wrk -t1 -c1  -d BENCH_DURATION --latency   (p50, p99)
# and prints one table, also saved to bench/results/<timestamp>.txt (raw wrk
# output next to it in <timestamp>.raw.log).
#
# Usage: bench/run_gateway_bench.sh [--with-litellm] [--no-litellm] [--no-bastion]
#                                   [--auth] [--extra NAME=COMMAND]... [-h]
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

# ---------------------------------------------------------------- settings --
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
CONNS=${BENCH_CONNECTIONS:-16}
MODES=${BENCH_MODES:-chat stream}
WRK_TIMEOUT=${BENCH_WRK_TIMEOUT:-10s}
STARTUP_TIMEOUT=${BENCH_STARTUP_TIMEOUT:-120}   # seconds to wait for a target's health check
GATEWAY_CPU=${BENCH_GATEWAY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
MOCK_CPU=${BENCH_MOCK_CPU:-1}
BASTION_BIN=${BENCH_BASTION_BIN:-$REPO_DIR/.venv/bin/bastion}
LITELLM_VENV=$BENCH_DIR/.venv-litellm
LITELLM_SPEC=${BENCH_LITELLM_SPEC:-litellm[proxy]}
RESULTS_DIR=$BENCH_DIR/results
LUA=$BENCH_DIR/wrk_openai.lua
NGINX_TEMPLATE=$BENCH_DIR/mock_upstream.nginx.conf
# BENCH_API_KEY (optional): sent as "Authorization: Bearer ..." to every target.
# BENCH_BASTION_ENV (optional): file sourced (exported) just before `bastion serve`.
# BENCH_BASTION_YAML_EXTRA (optional): file appended to the generated Bastion YAML.
# BENCH_EXTRA_HEALTH (optional): health path polled for --extra targets (/healthz).
# BENCH_NICE (optional): nice value for every process the bench starts (e.g. -10
#   as root), so other work on a shared machine disturbs the numbers less.
BENCH_API_KEY=${BENCH_API_KEY:-}
TARGET_KEY=$BENCH_API_KEY   # the key wrk sends to the target being measured

NICE=()
if [[ -n ${BENCH_NICE:-} ]]; then NICE=(nice -n "$BENCH_NICE"); fi

WITH_LITELLM=auto   # auto = run it only if bench/.venv-litellm already exists
RUN_BASTION=1
WITH_AUTH=0
EXTRAS=()

usage() {
  # The header comment of this file, up to the first line that is not one.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  cat <<'EOF'
Options:
  --with-litellm      create bench/.venv-litellm (pip install 'litellm[proxy]') if
                      missing, and benchmark LiteLLM's proxy
  --no-litellm        skip LiteLLM even if its venv exists
  --no-bastion        skip Bastion (e.g. to bench only the mock and --extra targets)
  --auth              also bench "bastion+auth": Bastion with auth on (and limits,
                      budgets, ledger at their defaults), sending a service key the
                      bench creates with `bastion keys create`
  --extra NAME=CMD    also bench CMD (run with bash -c, pinned to the gateway core);
                      it gets BENCH_PORT (where to listen) and BENCH_MOCK_URL
                      (http://127.0.0.1:PORT of the mock) in its environment, must
                      answer GET $BENCH_EXTRA_HEALTH (default /healthz) and route
                      model bench-model to $BENCH_MOCK_URL/v1 and bench-stream to
                      $BENCH_MOCK_URL/stream/v1
Environment: BENCH_DURATION (10s) BENCH_WARMUP (3s) BENCH_CONNECTIONS (16)
  BENCH_MODES ("chat stream"; add "embed") BENCH_API_KEY BENCH_BASTION_ENV
  BENCH_BASTION_YAML_EXTRA BENCH_BASTION_BIN BENCH_STARTUP_TIMEOUT (120)
  BENCH_GATEWAY_CPU (0) BENCH_LOAD_CPU (1) BENCH_MOCK_CPU (1) BENCH_NICE BENCH_KEEP_TMP
EOF
}

while (($#)); do
  case $1 in
    --with-litellm) WITH_LITELLM=yes ;;
    --no-litellm) WITH_LITELLM=no ;;
    --no-bastion) RUN_BASTION=0 ;;
    --auth) WITH_AUTH=1 ;;
    --extra)
      [[ $# -ge 2 && $2 == *=* ]] || { echo "--extra needs NAME=COMMAND" >&2; exit 2; }
      EXTRAS+=("$2"); shift ;;
    --extra=*) EXTRAS+=("${1#--extra=}") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[bench] %s\n' "$*" >&2; }

# ------------------------------------------------------------ dependencies --
# Debian packages: nginx (the mock), wrk (the load), curl (health checks),
# taskset (util-linux; pinning). Installed only when missing.
ensure_debs() {
  local missing=() pkg
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  command -v taskset >/dev/null || missing+=(util-linux)
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]} from Debian's packages"
  local sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  # nginx-light is gone from newer Debian releases; fall back to nginx.
  if ! "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq
    if ! "${sudo[@]}" apt-get install -y -qq "${missing[@]}"; then
      for pkg in "${!missing[@]}"; do
        if [[ ${missing[$pkg]} == nginx-light ]]; then missing[pkg]=nginx; fi
      done
      "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
    fi
  fi
  # The Debian package may try to start a system nginx on :80; it is not ours
  # and not used, so it is left alone.
}

# LiteLLM lives in its own venv: it pins many packages that must not leak
# into the project's venv, and it is big and slow to install, so it is only
# created on --with-litellm.
ensure_litellm() {
  if [[ $WITH_LITELLM == no ]]; then return 1; fi
  if [[ -x $LITELLM_VENV/bin/litellm ]]; then return 0; fi
  if [[ $WITH_LITELLM != yes ]]; then return 1; fi
  log "creating $LITELLM_VENV and installing '$LITELLM_SPEC' (a few minutes)"
  python3 -m venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install -q --upgrade pip
  "$LITELLM_VENV/bin/pip" install -q "$LITELLM_SPEC"
  [[ -x $LITELLM_VENV/bin/litellm ]]
}

ensure_debs

# Two benchmark runs at once would share the same two cores and both measure
# nonsense: take a machine-wide lock (released when this script exits).
LOCK_FILE=${TMPDIR:-/tmp}/bastion-gateway-bench.lock
exec 9>"$LOCK_FILE"
if ! flock -n 9; then
  log "another gateway benchmark is running on this machine; waiting for it (at most 15 min)"
  flock -w 900 9 || { log "it is still running; giving up"; exit 1; }
fi

# A single-core machine cannot keep load and gateway apart; run anyway, say so.
if (($(nproc) < 2)); then
  log "WARNING: fewer than 2 CPUs; everything is pinned to CPU 0 and the numbers mix load and gateway"
  GATEWAY_CPU=0 LOAD_CPU=0 MOCK_CPU=0
fi

# ------------------------------------------------------ process management --
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bastion-bench.XXXXXX")
# nginx's worker drops to "nobody" when started as root: it must be able to
# traverse the temp dir it was given.
chmod 755 "$TMP"
PIDS=()
WRK_PID=

# Stop one process we started, with everything it spawned. Targets are started
# through setsid, so each is the leader of its own process group and the group
# id is its pid (uvicorn/LiteLLM may fork workers).
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  if [[ -n ${WRK_PID:-} ]]; then stop_pid "$WRK_PID"; fi
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ -n ${BENCH_KEEP_TMP:-} ]]; then
    log "temp dir kept: $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# With autogroup scheduling (the Linux default) a process's nice value only
# weighs against processes of its own session; every process started here has
# a session of its own (setsid), so BENCH_NICE is also set on that session's
# group, or it would change nothing against a test suite running next door.
renice_group() {
  [[ -n ${BENCH_NICE:-} && -e /proc/$1/autogroup ]] || return 0
  echo "$BENCH_NICE" 2>/dev/null >"/proc/$1/autogroup" || log "could not set the scheduling group's nice of pid $1"
}

# Start "$@" in the background, in its own session, output to $1's log.
# Sets STARTED_PID.
start_bg() {
  local logfile=$1
  shift
  setsid "${NICE[@]}" "$@" >"$logfile" 2>&1 </dev/null 9>&- &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  renice_group "$STARTED_PID"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PID LOGFILE: poll URL until it answers 2xx. Polling is fine
# here: this is start-up, not the measured part.
wait_http() {
  local url=$1 pid=$2 logfile=$3 deadline=$((SECONDS + STARTUP_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "process $pid exited before $url answered; last lines of its log:"
      tail -n 25 "$logfile" >&2 || true
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  log "timed out after ${STARTUP_TIMEOUT}s waiting for $url; last lines of its log:"
  tail -n 25 "$logfile" >&2 || true
  return 1
}

# ------------------------------------------------------------- measurement --
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
RESULT_FILE=$RESULTS_DIR/$STAMP.txt
RAW=$RESULTS_DIR/$STAMP.raw.log
: >"$RAW"

# run_wrk CONNS DURATION URL MODE PATH [wrk args...]: sets WRK_LINE (the
# BENCHRESULT line) and WRK_SAMPLE (first failed response, if any).
run_wrk() {
  local conns=$1 dur=$2 url=$3 mode=$4 path=$5 out rc=0
  shift 5
  {
    echo "=== $(date -u +%T) wrk -t1 -c$conns -d$dur $* $url$path (mode=$mode)"
  } >>"$RAW"
  # In its own session like the servers, so BENCH_NICE reaches it too.
  BENCH_MODE=$mode BENCH_PATH=$path BENCH_API_KEY=$TARGET_KEY setsid "${NICE[@]}" taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$conns" -d"$dur" --timeout "$WRK_TIMEOUT" "$@" -s "$LUA" "$url" \
    >"$TMP/wrk.out" 2>&1 </dev/null 9>&- &
  WRK_PID=$!
  renice_group "$WRK_PID"
  wait "$WRK_PID" || rc=$?
  WRK_PID=
  out=$(<"$TMP/wrk.out")
  printf '%s\n' "$out" >>"$RAW"
  WRK_LINE=$(grep '^BENCHRESULT' <<<"$out" | tail -n 1 || true)
  WRK_SAMPLE=$(grep '^BENCHSAMPLE' <<<"$out" | head -n 1 | cut -c13- || true)
  if [[ $rc -ne 0 || -z $WRK_LINE ]]; then
    log "wrk failed (exit $rc):"
    printf '%s\n' "$out" | tail -n 5 >&2
    WRK_LINE=""
    return 1
  fi
}

# cpu_sample PGID CPU: prints "T B A": T = CPU time (clock ticks) used so far by
# the live processes of process group PGID (the target and any worker it
# forked), B and A = busy and all ticks of core CPU from /proc/stat. Sampled
# around the throughput run they give:
#   CPU%      the target's CPU use: near 100 when it is the bottleneck;
#   core%     how busy its core was: core% well above CPU% means something
#             else ran on that core (other work on the machine, or for the
#             mock, wrk); both well under 100 means the target sat waiting;
#   CPU us/r  its CPU time per request, which other load disturbs much less
#             than req/s.
CLK_TCK=$(getconf CLK_TCK)
cpu_sample() {
  python3 - "$1" "$2" <<'EOF'
import os, sys
group, core, ticks = int(sys.argv[1]), "cpu" + sys.argv[2], 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    if int(fields[2]) == group:
        ticks += int(fields[11]) + int(fields[12])
busy = total = 0
with open("/proc/stat") as f:
    for line in f:
        name, *vals = line.split()
        if name == core:
            vals = [int(v) for v in vals[:8]]  # user nice system idle iowait irq softirq steal
            total = sum(vals)
            busy = total - vals[3] - vals[4]
print(ticks, busy, total)
EOF
}

# Field from WRK_LINE, e.g. field rps
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$WRK_LINE"; }

ROWS=()                  # "target|mode|rps|p50_ms|p99_ms|added|cpu%|core%|cpu_us_per_req|non2xx|bad|sockerr"
declare -A MOCK_P50      # mode -> p50 (ms) of the mock alone
NOTES=()

# bench_target NAME BASE_URL PATH_FOR_MODE_FN PGID CPU
bench_target() {
  local name=$1 base=$2 pathfn=$3 pgid=$4 mode path rps p50 p99 non2xx bad sock added
  local cpuid=$5 t0 t1 cpu cpureq core
  for mode in $MODES; do
    path=$($pathfn "$mode")
    log "$name / $mode: smoke check"
    # Short runs at one connection: if the target answers errors (401, unknown
    # model, ...) there is nothing worth measuring; say why instead. Up to 5
    # tries, because a first request may be slow (lazy imports, pools) and
    # wrk drops a request still in flight when its run ends.
    for _ in 1 2 3 4 5; do
      run_wrk 1 2s "$base" "$mode" "$path" || break
      [[ $(field requests) -eq 0 ]] || break
    done
    if [[ -z $WRK_LINE ]]; then
      ROWS+=("$name|$mode|wrk failed|-|-|-|-|-|-|-|-|-")
      continue
    fi
    if [[ $(field requests) -eq 0 || $(field non2xx) -ne 0 || $(field badbody) -ne 0 ]]; then
      log "$name / $mode: responses fail the check: ${WRK_SAMPLE:-no response at all}"
      NOTES+=("$name/$mode not measured: ${WRK_SAMPLE:-no response in 5 runs of 2s}")
      ROWS+=("$name|$mode|FAILED|-|-|-|-|-|-|$(field non2xx)|$(field badbody)|-")
      continue
    fi
    log "$name / $mode: warm-up ${WARMUP} @${CONNS}"
    run_wrk "$CONNS" "$WARMUP" "$base" "$mode" "$path" || true
    log "$name / $mode: throughput ${DURATION} @${CONNS}"
    rps=- non2xx=0 bad=0 sock=0 cpu=- cpureq=- core=-
    t0=$(cpu_sample "$pgid" "$cpuid")
    if run_wrk "$CONNS" "$DURATION" "$base" "$mode" "$path"; then
      t1=$(cpu_sample "$pgid" "$cpuid")
      rps=$(field rps)
      read -r cpu core cpureq < <(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" \
        -v us="$(field duration_us)" -v n="$(field requests)" 'BEGIN {
          split(a, x, " "); split(b, y, " "); s = (y[1] - x[1]) / hz
          printf "%.0f %.0f %.0f\n", 100 * s * 1e6 / us,
            (y[3] > x[3] ? 100 * (y[2] - x[2]) / (y[3] - x[3]) : 0), (n ? s * 1e6 / n : 0) }')
      # The mock shares its core with wrk by design; for a gateway, a busy
      # core it did not use means other work on the machine took its CPU.
      if [[ $name != mock* ]] && ((core - cpu > 15)); then
        local hint="BENCH_NICE=-10 helps"
        if [[ -n ${BENCH_NICE:-} ]]; then hint="rerun when the machine is quiet"; fi
        NOTES+=("$name/$mode: its core was ${core}% busy but it used ${cpu}%: other work ran on CPU $cpuid (or on the core of wrk and the mock), so req/s is understated; $hint")
      fi
      non2xx=$(field non2xx) bad=$(field badbody)
      sock=$(($(field connect) + $(field read) + $(field write) + $(field timeout)))
      [[ -z $WRK_SAMPLE ]] || NOTES+=("$name/$mode @${CONNS}: first failure: $WRK_SAMPLE")
    fi
    log "$name / $mode: latency ${DURATION} @1"
    p50=- p99=- added=-
    if run_wrk 1 "$DURATION" "$base" "$mode" "$path" --latency; then
      p50=$(awk -v u="$(field p50_us)" 'BEGIN { printf "%.3f", u / 1000 }')
      p99=$(awk -v u="$(field p99_us)" 'BEGIN { printf "%.3f", u / 1000 }')
      non2xx=$((non2xx + $(field non2xx)))
      bad=$((bad + $(field badbody)))
      sock=$((sock + $(field connect) + $(field read) + $(field write) + $(field timeout)))
      [[ -z $WRK_SAMPLE ]] || NOTES+=("$name/$mode @1: first failure: $WRK_SAMPLE")
      if [[ $name == mock* ]]; then
        MOCK_P50[$mode]=$p50
        added=base
      elif [[ -n ${MOCK_P50[$mode]:-} ]]; then
        added=$(awk -v a="$p50" -v b="${MOCK_P50[$mode]}" 'BEGIN { printf "%+.3f", a - b }')
      fi
    fi
    ROWS+=("$name|$mode|$rps|$p50|$p99|$added|$cpu|$core|$cpureq|$non2xx|$bad|$sock")
    log "$name / $mode: ${rps} req/s @${CONNS} (CPU ${cpu}%, core ${core}%, ${cpureq} us/req), p50 ${p50} ms, p99 ${p99} ms @1, non-2xx ${non2xx}"
  done
}

# Paths per mode. The mock is hit directly, so streaming goes to the /stream
# location; gateways get the OpenAI path and pick the upstream by model alias.
mock_path() {
  case $1 in
    chat) echo /v1/chat/completions ;;
    stream) echo /stream/v1/chat/completions ;;
    embed) echo /v1/embeddings ;;
  esac
}
gateway_path() {
  case $1 in
    chat | stream) echo /v1/chat/completions ;;
    embed) echo /v1/embeddings ;;
  esac
}

# -------------------------------------------------------------- the mock ---
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN { exit !(l > 1.0) }'; then
  NOTES+=("the machine was already busy before the run (load average $LOAD_BEFORE): expect noisy numbers")
  log "WARNING: load average is $LOAD_BEFORE before the run; other work will skew the numbers"
fi
MOCK_PORT=$(free_port)
MOCK_URL=http://127.0.0.1:$MOCK_PORT
sed -e "s#@PORT@#$MOCK_PORT#g" -e "s#@TMP@#$TMP#g" "$NGINX_TEMPLATE" >"$TMP/nginx.conf"
log "starting the mock (nginx) on $MOCK_URL, CPU $MOCK_CPU"
start_bg "$TMP/nginx.log" taskset -c "$MOCK_CPU" nginx -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;'
MOCK_PID=$STARTED_PID
wait_http "$MOCK_URL/healthz" "$MOCK_PID" "$TMP/nginx.log" || { log "the mock did not start"; exit 1; }

bench_target "mock (nginx)" "$MOCK_URL" mock_path "$MOCK_PID" "$MOCK_CPU"

# ----------------------------------------------------------------- Bastion --
# bench_bastion NAME AUTH: AUTH=0 runs Bastion as configured by BENCH_API_KEY
# (auth off when it is empty); AUTH=1 (--auth) keeps auth on and has the
# bench create a service key with `bastion keys create`, which wrk then sends.
bench_bastion() {
  local name=$1 auth=$2 port cfg pid dir
  port=$(free_port)
  dir=$TMP/$name
  mkdir -p "$dir"
  cfg=$dir/bastion.yaml
  cat >"$cfg" <<EOF
# Generated by bench/run_gateway_bench.sh
models:
  - name: bench-model
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: "$MOCK_URL/v1", api_key: "sk-bench"}
  - name: bench-stream
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: "$MOCK_URL/stream/v1", api_key: "sk-bench"}
EOF
  if [[ " $MODES " == *" embed "* ]]; then
    cat >>"$cfg" <<EOF
  - name: bench-embed
    kind: embedding
    deployments:
      - {provider: openai, model: text-embedding-3-small, api_base: "$MOCK_URL/v1", api_key: "sk-bench"}
EOF
  fi
  # data_dir: the embedded database, keys and ledger journal go to the temp
  # dir, not the repo (BASTION_DATA_DIR in BENCH_BASTION_ENV overrides it).
  # Without a key to send, auth is turned off; everything else (limits,
  # budgets, ledger) stays at Bastion's defaults.
  cat >>"$cfg" <<EOF
local: {enabled: false}
logging: {level: warning}
data_dir: "$dir/data"
EOF
  if ((!auth)) && [[ -z $BENCH_API_KEY ]]; then
    echo 'auth: {enabled: false}' >>"$cfg"
  fi
  if [[ -n ${BENCH_BASTION_YAML_EXTRA:-} ]]; then
    cat "$BENCH_BASTION_YAML_EXTRA" >>"$cfg"
  fi
  { echo "=== generated Bastion config ($name)"; cat "$cfg"; } >>"$RAW"
  log "starting $name on 127.0.0.1:$port, CPU $GATEWAY_CPU (config $cfg)"
  # The env file is sourced in this subshell only, so it configures Bastion
  # (BASTION_* variables for auth, limits, ledger...) without changing how wrk
  # or the other targets run. It is bash, so it may also run a setup step
  # first (e.g. create the key BENCH_API_KEY names): it sees
  # BENCH_BASTION_CONFIG (the generated YAML) and BENCH_BASTION_BIN. With
  # --auth the key is created here, after the env file, in the same database
  # `serve` then uses, and handed back through a file.
  # shellcheck disable=SC1090,SC2016  # expanded by the inner bash, on purpose
  start_bg "$dir/bastion.log" env BENCH_BASTION_CONFIG="$cfg" BENCH_BASTION_BIN="$BASTION_BIN" bash -c '
    set -eo pipefail
    if [[ -n ${BENCH_BASTION_ENV:-} ]]; then set -a; source "$BENCH_BASTION_ENV"; set +a; fi
    if (($5)); then
      "$2" keys create --tenant bench --role service --name bench --config "$3" --json \
        | python3 -c "import json, sys; print([json.loads(l) for l in sys.stdin if l.startswith(\"{\")][-1][\"key\"])" \
        >"$6.tmp"
      mv "$6.tmp" "$6"
    fi
    exec taskset -c "$1" "$2" serve --config "$3" --host 127.0.0.1 --port "$4" --workers 1
  ' bastion-bench "$GATEWAY_CPU" "$BASTION_BIN" "$cfg" "$port" "$auth" "$dir/key"
  pid=$STARTED_PID
  if wait_http "http://127.0.0.1:$port/healthz" "$pid" "$dir/bastion.log"; then
    if ((auth)); then TARGET_KEY=$(<"$dir/key"); fi
    bench_target "$name" "http://127.0.0.1:$port" gateway_path "$pid" "$GATEWAY_CPU"
  else
    NOTES+=("$name not measured: it did not become healthy (see the log lines above)")
  fi
  TARGET_KEY=$BENCH_API_KEY
  stop_pid "$pid"
}

BASTION_VERSION="not run"
if ((RUN_BASTION)); then
  if [[ ! -x $BASTION_BIN ]]; then
    NOTES+=("bastion not run: $BASTION_BIN not found")
  else
    BASTION_VERSION=$("$(dirname "$BASTION_BIN")/python" -c \
      'import importlib.metadata as m; print(m.version("bastion"))' 2>/dev/null || echo unknown)
    bench_bastion bastion 0
    if ((WITH_AUTH)); then bench_bastion bastion+auth 1; fi
  fi
fi

# ----------------------------------------------------------------- LiteLLM --
LITELLM_VERSION="not run"
if ensure_litellm; then
  LITELLM_VERSION=$("$LITELLM_VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || echo unknown)
  port=$(free_port)
  cfg=$TMP/litellm.yaml
  # Same upstream, same aliases, no callbacks, no database, no request
  # logging: LiteLLM's lightest proxy configuration. Auth mirrors Bastion's:
  # with BENCH_API_KEY set it becomes LiteLLM's master_key (LiteLLM only
  # accepts keys that start with "sk-"); without it LiteLLM 1.106+ refuses to
  # start unless told that an unset master key is deliberate.
  if [[ -n $BENCH_API_KEY ]]; then
    litellm_auth="master_key: \"$BENCH_API_KEY\""
  else
    litellm_auth="dangerously_permit_weak_or_unset_master_key: true"
  fi
  cat >"$cfg" <<EOF
# Generated by bench/run_gateway_bench.sh
model_list:
  - model_name: bench-model
    litellm_params: {model: openai/gpt-4o-mini, api_base: "$MOCK_URL/v1", api_key: "sk-bench"}
  - model_name: bench-stream
    litellm_params: {model: openai/gpt-4o-mini, api_base: "$MOCK_URL/stream/v1", api_key: "sk-bench"}
  - model_name: bench-embed
    litellm_params: {model: openai/text-embedding-3-small, api_base: "$MOCK_URL/v1", api_key: "sk-bench"}
litellm_settings:
  telemetry: false
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  callbacks: []
  success_callback: []
  failure_callback: []
general_settings:
  $litellm_auth
  disable_spend_logs: true
EOF
  { echo "=== generated LiteLLM config"; cat "$cfg"; } >>"$RAW"
  log "starting LiteLLM $LITELLM_VERSION on 127.0.0.1:$port, CPU $GATEWAY_CPU (config $cfg)"
  # LITELLM_LOCAL_MODEL_COST_MAP: use the bundled price map instead of fetching
  # it at start-up (no internet here). LITELLM_LOG=ERROR: no per-request logs
  # (it also sets uvicorn's log level, so no access log). The CLI runs uvicorn
  # with uvloop itself.
  start_bg "$TMP/litellm.log" env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    taskset -c "$GATEWAY_CPU" "$LITELLM_VENV/bin/litellm" --config "$cfg" \
    --host 127.0.0.1 --port "$port" --num_workers 1
  pid=$STARTED_PID
  if wait_http "http://127.0.0.1:$port/health/liveliness" "$pid" "$TMP/litellm.log"; then
    bench_target litellm "http://127.0.0.1:$port" gateway_path "$pid" "$GATEWAY_CPU"
  else
    NOTES+=("litellm not measured: it did not become healthy")
  fi
  stop_pid "$pid"
fi

# ----------------------------------------------------------- --extra CMDs --
for extra in "${EXTRAS[@]}"; do
  name=${extra%%=*} cmd=${extra#*=}
  port=$(free_port)
  log "starting $name on 127.0.0.1:$port, CPU $GATEWAY_CPU: $cmd"
  start_bg "$TMP/extra-$port.log" env BENCH_PORT="$port" BENCH_MOCK_URL="$MOCK_URL" \
    taskset -c "$GATEWAY_CPU" bash -c "$cmd"
  pid=$STARTED_PID
  if wait_http "http://127.0.0.1:$port${BENCH_EXTRA_HEALTH:-/healthz}" "$pid" "$TMP/extra-$port.log"; then
    bench_target "$name" "http://127.0.0.1:$port" gateway_path "$pid" "$GATEWAY_CPU"
  else
    NOTES+=("$name not measured: it did not become healthy")
  fi
  stop_pid "$pid"
done

# ------------------------------------------------------------------ report --
report() {
  local row
  echo "Bastion gateway benchmark, $STAMP"
  echo "machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
  echo "pinning: gateway CPU $GATEWAY_CPU (one worker), wrk CPU $LOAD_CPU (one thread), mock nginx CPU $MOCK_CPU (one worker); all on loopback"
  echo "nice: ${BENCH_NICE:-not set}"
  echo "runs: warm-up $WARMUP @$CONNS, req/s over $DURATION @$CONNS connections, p50/p99 over $DURATION @1 connection"
  echo "versions: bastion $BASTION_VERSION ($(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo no-git)), litellm $LITELLM_VERSION, $(nginx -v 2>&1 | sed 's#nginx version: ##'), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  echo "load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (anything else busy on the machine skews every number)"
  if [[ -n $BENCH_API_KEY ]]; then
    echo "auth: Authorization: Bearer \$BENCH_API_KEY sent to every target (LiteLLM's master_key)${BENCH_BASTION_ENV:+; bastion env file: $BENCH_BASTION_ENV}"
  else
    echo "auth: none sent; Bastion runs with auth.enabled=false, LiteLLM with no master key${BENCH_BASTION_ENV:+; bastion env file: $BENCH_BASTION_ENV}"
  fi
  if ((WITH_AUTH)); then
    echo "bastion+auth: auth on, a service key created by the bench (bastion keys create) sent as Bearer"
  fi
  echo
  local fmt='%-18s %-6s %9s %9s %9s %12s %5s %6s %9s %8s %8s %8s\n'
  # shellcheck disable=SC2059  # the format is the local above
  printf "$fmt" target mode "req/s@$CONNS" "p50@1 ms" "p99@1 ms" "+p50 vs mock" "CPU%" "core%" \
    "CPU us/r" non-2xx "bad body" "sock err"
  # shellcheck disable=SC2059
  printf "$fmt" ------------------ ------ --------- --------- --------- ------------ ----- ------ \
    --------- -------- -------- --------
  for row in "${ROWS[@]}"; do
    IFS='|' read -r t m r p5 p9 a c k cr n b s <<<"$row"
    # shellcheck disable=SC2059
    printf "$fmt" "$t" "$m" "$r" "$p5" "$p9" "$a" "$c" "$k" "$cr" "$n" "$b" "$s"
  done
  echo
  echo "stream latency = time to the end of the whole SSE response. +p50 vs mock = the target's"
  echo "p50 minus the mock's p50 in the same mode (what the gateway adds per request). During the"
  echo "req/s run: CPU% = the target's own CPU use, core% = how busy its core was (CPU% well below"
  echo "core% = something else ran there), CPU us/r = the target's CPU time per request."
  local note
  for note in "${NOTES[@]}"; do echo "note: $note"; done
}

report | tee "$RESULT_FILE"
log "saved to ${RESULT_FILE#"$REPO_DIR"/} (raw wrk output: ${RAW#"$REPO_DIR"/})"
