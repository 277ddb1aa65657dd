#!/usr/bin/env bash
# The whole EdgeKube test suite, as a newcomer runs it and as CI runs it (.ci/run):
# installs what the tests need (apt-get, NuGet restore), builds, runs every test against the real
# components (the tests start their own containerd, registry and brokers on loopback and temp dirs),
# after publishing the agent as NativeAOT (no trim/AOT warnings allowed) and the master for linux-x64 and
# linux-arm64, which the deployment tests (packages, the arm64 agent under qemu) use.
# Needs root: containerd, runc and CNI need it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,DOTNET_ROOT,CI bash "$0" "$@"
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

echo "==> installing test dependencies"
bash scripts/install-deps.sh
bash scripts/install-build-deps.sh

echo "==> building"
dotnet build EdgeKube.sln -c Release
# Cake.Tool from the tool manifest: the deployment tests drive build.cake's Package and PrepareSdCard targets.
dotnet tool restore

# Before the tests: the published binaries are under test too (the arm64 agent runs under qemu and
# joins a master; the .debs and release tarballs are built from them). Fails on any trim/AOT warning.
echo "==> publishing: NativeAOT agent and self-contained master, linux-x64 and linux-arm64"
bash scripts/publish.sh linux-x64 linux-arm64

results="artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

echo "==> running tests"
set +e
dotnet test EdgeKube.sln -c Release --no-build \
  --logger "trx" --logger "console;verbosity=normal" --results-directory "$results" \
  -- RunConfiguration.TestSessionTimeout=3000000
status=$?
set -e

# At the end, where a log's tail shows it: each failed test with the start of its message and stack,
# then one plain summary line across all test assemblies: "N passed, N failed, N skipped".
python3 - "$results" <<'PY' || true
import sys, glob, xml.etree.ElementTree as ET
p = f = s = 0
for trx in glob.glob(sys.argv[1] + "/*.trx"):
    root = ET.parse(trx).getroot()
    for r in root.findall(".//{*}UnitTestResult"):
        if r.get("outcome") in ("Failed", "Error", "Timeout"):
            print(f"FAILED {r.get('testName')} ({r.get('duration')})")
            for tag in ("Message", "StackTrace"):
                e = r.find(".//{*}ErrorInfo/{*}" + tag)
                lines = (e.text or "").strip().splitlines() if e is not None else []
                for line in lines[:12]:
                    print("    " + line[:300])
    c = root.find(".//{*}Counters")
    p += int(c.get("passed", 0)); f += int(c.get("failed", 0)) + int(c.get("error", 0)) + int(c.get("timeout", 0))
    s += int(c.get("notExecuted", 0))
print(f"{p} passed, {f} failed, {s} skipped")
PY

if [ "$status" -ne 0 ]; then
  echo "tests failed (exit $status)" >&2
  exit "$status"
fi
