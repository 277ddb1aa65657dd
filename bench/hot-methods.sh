#!/usr/bin/env bash
# Writes src/EdgeKube.Agent/hot-methods.txt: the managed methods a running agent executes, most sampled first.
# The NativeAOT compiler lays them out first and together (EdgeKube.Agent.csproj: --method-layout:explicit
# --order), so the idle agent touches a few hundred KiB of code pages instead of nearly all of them
# (docs/benchmarks.md, footprint).
#
# How: the footprint scenario runs the published agent with 10 busybox pods; `perf record -g` samples it
# for SECONDS (default 180) at 20 kHz, and every symbol of the agent's binary seen on a sampled stack (leaf
# or caller) is kept, symbolized through the .dbg file beside the binary. Needs root, perf, and the agent
# published first (scripts/publish.sh linux-x64). A method the samples miss is laid out with the rest and
# costs one more page when it runs; a method listed that no longer exists is skipped by the compiler.
#   bench/hot-methods.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
agent="$PWD/artifacts/publish/linux-x64/edgekube-agent"
out="$PWD/src/EdgeKube.Agent/hot-methods.txt"
[ -x "$agent" ] && [ -f "$agent.dbg" ] || { echo "publish the agent first: bash scripts/publish.sh linux-x64" >&2; exit 1; }
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }

work="$(mktemp -d)"
bench_pid=""
cleanup() {
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# perf finds the symbols of the stripped binary through its build id.
perf buildid-cache --add "$agent.dbg" 2>/dev/null || true

bash bench/run.sh footprint --runs 1 --window $((seconds + 120)) --out "$work/results" > "$work/bench.log" 2>&1 &
bench_pid=$!

echo "hot-methods: waiting for the footprint scenario's agent to run 10 pods" >&2
pid=""
for _ in $(seq 1 240); do
  pid="$(pgrep -f "^$agent " | head -1 || true)"
  if [ -n "$pid" ]; then
    logs="$(tr '\0' '\n' < "/proc/$pid/cmdline" | grep -A1 -- '--pod-logs-dir' | tail -1)"
    [ "$(ls "$logs" 2>/dev/null | wc -l)" -ge 10 ] && break
  fi
  sleep 5
done
[ -n "$pid" ] || { echo "hot-methods: no agent started; see $work/bench.log" >&2; exit 1; }
sleep 15

echo "hot-methods: sampling agent $pid for $seconds s" >&2
perf record -F 20000 -g -p "$pid" -o "$work/perf.data" -- sleep "$seconds" > /dev/null 2>&1

# Symbols of the binary's code, to keep only real method names.
nm --defined-only "$agent.dbg" | awk '$2 == "t" || $2 == "T" { print $3 }' | sort -u > "$work/symbols"
perf script -i "$work/perf.data" -F ip,sym,dso 2>/dev/null \
  | awk -v exe="$agent" 'index($0, "(" exe ")") { sym = $2; sub(/\+0x[0-9a-f]+$/, "", sym); if (sym != "[unknown]") n[sym]++ }
                         END { for (s in n) print n[s], s }' \
  | sort -k1,1nr -k2 | awk '{ print $2 }' > "$work/sampled"
awk 'NR == FNR { known[$1] = 1; next } known[$1]' "$work/symbols" "$work/sampled" > "$out"
echo "hot-methods: $(wc -l < "$out") methods written to $out" >&2
