#!/usr/bin/env bash
# Writes src/EdgeKube.Agent/hot-methods.txt: the managed methods a running agent executes, most sampled first.
# The NativeAOT compiler lays them out first and together (EdgeKube.Agent.csproj: --method-layout:explicit
# --order), so the idle agent touches a few hundred KiB of code pages instead of nearly all of them
# (docs/benchmarks.md, footprint).
#
# How: the footprint scenario runs the published agent with 10 busybox pods. For SECONDS (default 180):
# * `perf record -g` samples it at 20 kHz, and every symbol of the agent's binary seen on a sampled stack
#   (leaf or caller) is kept, most sampled first;
# * every 2 s its executable's pages are given back (process_madvise MADV_PAGEOUT, and the file dropped from
#   the page cache), and `perf record -e page-faults -d` records where the code faults them back in: the
#   methods that run too seldom or too briefly to be sampled. For one fault per page, the disk's
#   read_ahead_kb is 0 meanwhile (restored after): the kernel reads ahead for code whatever MADV_RANDOM says,
#   and one fault would otherwise map the methods around it too.
# Symbols come from the .dbg file beside the binary. Needs root, perf, python3, and the agent published first
# (scripts/publish.sh linux-x64). A method both miss is laid out with the rest and costs 64 KiB when it
# runs (docs/benchmarks.md, footprint); a method listed that no longer exists is skipped by the compiler.
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
pager_pid=""
# The block device the binary is read from, for its read-ahead.
dev="$(basename "$(df --output=source "$agent" | tail -1)")"
[ -e "/sys/block/$dev" ] || dev="$(basename "$(readlink -f "/sys/class/block/$dev/..")")"
ra_file="/sys/block/$dev/queue/read_ahead_kb"
ra_saved=""
if [ -w "$ra_file" ]; then
  ra_saved="$(cat "$ra_file")"
  echo 0 > "$ra_file"
else
  echo "hot-methods: cannot set the read-ahead of '$dev': faults will map 64 KiB each and find fewer methods" >&2
fi
cleanup() {
  [ -n "$pager_pid" ] && kill "$pager_pid" 2>/dev/null || true
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
  [ -n "$ra_saved" ] && echo "$ra_saved" > "$ra_file"
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

echo "hot-methods: sampling agent $pid for $seconds s, and recording its code faults" >&2
# Where the binary is loaded (a PIE): the symbols' addresses are relative to it.
base="$(awk -v exe="$agent" '$6 == exe && $3 == "00000000" { split($1, r, "-"); print r[1]; exit }' "/proc/$pid/maps")"
python3 - "$pid" "$agent" > "$work/pager.log" 2>&1 <<'PY' &
import ctypes, os, sys, time
pid, exe = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
pidfd = os.pidfd_open(pid)
fd = os.open(exe, os.O_RDONLY)
while True:
    for line in open(f"/proc/{pid}/maps"):
        f = line.split()
        if len(f) >= 6 and f[5] == exe and f[1][0] == "r" and f[1][1] == "-":
            a, b = (int(x, 16) for x in f[0].split("-"))
            iov = iovec(a, b - a)
            libc.syscall(440, pidfd, ctypes.byref(iov), 1, 21, 0)  # process_madvise(MADV_PAGEOUT)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    time.sleep(2)
PY
pager_pid=$!
perf record -e page-faults -d -p "$pid" -o "$work/faults.data" -- sleep "$seconds" > /dev/null 2>&1 &
faults_pid=$!
perf record -F 20000 -g -p "$pid" -o "$work/perf.data" -- sleep "$seconds" > /dev/null 2>&1
wait "$faults_pid" || true
kill "$pager_pid" 2>/dev/null || true
pager_pid=""

# Symbols of the binary's code, by address: their names, to keep only real methods, and the ranges of
# those with a size, to name the method a fault landed in.
nm -S -n --defined-only "$agent.dbg" > "$work/nm"
awk '$(NF-1) == "t" || $(NF-1) == "T" { print $NF }' "$work/nm" | sort -u > "$work/symbols"
awk '($3 == "t" || $3 == "T") && NF == 4 { print $1, $2, $4 }' "$work/nm" > "$work/symbol-ranges"
perf script -i "$work/perf.data" -F ip,sym,dso 2>/dev/null \
  | awk -v exe="$agent" 'index($0, "(" exe ")") { sym = $2; sub(/\+0x[0-9a-f]+$/, "", sym); if (sym != "[unknown]") n[sym]++ }
                         END { for (s in n) print n[s], s }' \
  | sort -k1,1nr -k2 | awk '{ print $2 }' > "$work/sampled"
# A fault's data address inside a method (an instruction fetch) names the method; reads of data do not.
perf script -i "$work/faults.data" -F addr 2>/dev/null | python3 -c '
import bisect, sys
base = int(sys.argv[1], 16)
ranges = [l.split() for l in open(sys.argv[2])]
starts = [int(r[0], 16) for r in ranges]
seen = {}
for line in sys.stdin:
    try:
        a = int(line.split()[0], 16) - base
    except (ValueError, IndexError):
        continue
    i = bisect.bisect_right(starts, a) - 1
    if i >= 0 and a < starts[i] + max(int(ranges[i][1], 16), 1):
        seen[ranges[i][2]] = seen.get(ranges[i][2], 0) + 1
for name, _ in sorted(seen.items(), key=lambda kv: -kv[1]):
    print(name)
' "$base" "$work/symbol-ranges" > "$work/faulted"
# Sampled first (most sampled first), then the methods only the faults found.
cat "$work/sampled" "$work/faulted" | awk '!seen[$1]++' \
  | awk 'NR == FNR { known[$1] = 1; next } known[$1]' "$work/symbols" - > "$out"
echo "hot-methods: $(wc -l < "$work/sampled") methods sampled, $(awk 'NR == FNR { s[$1] = 1; next } !s[$1]' "$work/sampled" "$work/faulted" | wc -l) more found by their faults; $(wc -l < "$out") written to $out" >&2
