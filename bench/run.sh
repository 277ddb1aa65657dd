#!/usr/bin/env bash
# Runs the benchmarks (docs/benchmarks.md): all scenarios, or the ones named.
#   bench/run.sh                      footprint startup failure bandwidth scale storm
#   bench/run.sh footprint            one scenario
#   bench/run.sh scale --nodes 100,1000,5000 --runs 3 --window 30
# Each scenario prints its table and writes bench/results/<scenario>.md and .json.
# Needs root (it runs its own containerd, as the integration tests do).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi

command -v containerd >/dev/null && command -v kubectl >/dev/null || bash scripts/install-deps.sh
dotnet build bench/EdgeKube.Bench/EdgeKube.Bench.csproj -c Release --nologo -v quiet
# The footprint, startup, failure and bandwidth scenarios run the NativeAOT agent; publish it once.
[ -x artifacts/publish/linux-x64/edgekube-agent ] || bash scripts/publish.sh linux-x64
# The bench process's own GC (it holds up to 10,000 hollow nodes and their pods): a 512 MiB gen0 budget, so
# a collection, which must scan the cards of a heap of gigabytes, comes every few seconds instead of several
# times a second (docs/benchmarks.md, Master scale). The master and agents it starts do not inherit these.
export DOTNET_GCgen0size=0x20000000 DOTNET_GCGen0MaxBudget=0x20000000
exec dotnet bench/EdgeKube.Bench/bin/Release/net10.0/edgekube-bench.dll "$@"
