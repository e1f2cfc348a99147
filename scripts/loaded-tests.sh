#!/usr/bin/env bash
# Runs the README's test command several times while every CPU is kept
# busy, to show the suite holds on a loaded machine (issue 12).
#
#   scripts/loaded-tests.sh [RUNS] [-- cargo test arguments...]
#
# RUNS defaults to 3. The test binaries are built first, unloaded; then
# `stress --cpu <cores>` (or, without stress, one busy shell loop per core)
# runs for the whole time. Each run's output goes to target/loaded-tests/;
# the script ends with one line per run and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=3
if [[ $# -gt 0 && $1 != "--" ]]; then runs=$1; shift; fi
[[ ${1:-} == "--" ]] && shift
logs=${CARGO_TARGET_DIR:-target}/loaded-tests
mkdir -p "$logs"

cargo test --no-run "$@" >"$logs/build.log" 2>&1 || { tail -n 30 "$logs/build.log"; exit 1; }

cores=$(nproc)
load_pids=()
if command -v stress >/dev/null; then
  stress --cpu "$cores" >/dev/null 2>&1 &
  load_pids+=($!)
  echo "load: stress --cpu $cores"
else
  for _ in $(seq "$cores"); do
    (while :; do :; done) &
    load_pids+=($!)
  done
  echo "load: $cores busy shell loops (install stress for the usual load)"
fi
stop_load() { kill "${load_pids[@]}" 2>/dev/null; wait "${load_pids[@]}" 2>/dev/null; }
trap stop_load EXIT

failed=0
summary=()
for i in $(seq "$runs"); do
  log="$logs/run-$i.log"
  start=$(date +%s)
  if cargo test "$@" >"$log" 2>&1; then
    result=green
  else
    result=RED
    failed=$((failed + 1))
  fi
  took=$(($(date +%s) - start))
  passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
  fails=$(grep -E '^    [a-z_:]+$' "$log" | sort -u | tr -d ' ' | paste -sd, -)
  summary+=("run $i: $result, $passed tests passed, ${took}s${fails:+, failed: $fails} ($log)")
  echo "${summary[-1]}"
done
echo "--- $runs loaded runs, $((runs - failed)) green (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
exit $((failed > 0))
