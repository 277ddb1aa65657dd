#!/usr/bin/env bash
# Publishes edgekube-agent as a NativeAOT single binary for each RID given (default: linux-x64 and
# linux-arm64) into artifacts/publish/<rid>/edgekube-agent, and edgekube-master as a self-contained
# single-file app (no .NET needed on the machine; native SQLite beside it) into
# artifacts/publish/<rid>/master/, and checks that both start.
#   bash scripts/publish.sh [RID...]
# Fails (non-zero exit) when the publish fails or when it reports any trim or AOT warning
# (ILxxxx, IL3xxx), listing them. Warnings are found by parsing the build output, not by
# -warnaserror: that would also turn unrelated warnings (NuGet's NU1603, which the repository
# deliberately tolerates) into failures. Directory.Build.props sets TreatWarningsAsErrors, so ILC
# may already report them as "error ILxxxx"; both forms are caught.
# arm64 is cross-compiled on an x64 host with Debian's clang + lld against the arm64 cross libc
# (scripts/install-build-deps.sh installs all of it), and run once under qemu-aarch64-static.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

project=src/EdgeKube.Agent/EdgeKube.Agent.csproj
binary=edgekube-agent
rids=("$@")
[ "${#rids[@]}" -gt 0 ] || rids=(linux-x64 linux-arm64)

case "$(uname -m)" in
  x86_64) host_arch=x86_64 ;;
  aarch64 | arm64) host_arch=aarch64 ;;
  *) host_arch=$(uname -m) ;;
esac

# GNU triple architecture of a RID (only the Linux glibc RIDs the boards and CI use).
triple_arch() {
  case "$1" in
    linux-x64) echo x86_64 ;;
    linux-arm64) echo aarch64 ;;
    *) echo "publish.sh: unsupported RID '$1' (linux-x64, linux-arm64)" >&2; return 1 ;;
  esac
}

# Installs the toolchain when something is missing (the script asks for sudo itself).
need_deps=false
command -v clang >/dev/null || need_deps=true
for rid in "${rids[@]}"; do
  arch=$(triple_arch "$rid")
  if [ "$arch" != "$host_arch" ]; then
    command -v ld.lld >/dev/null || need_deps=true
    command -v "$arch-linux-gnu-objcopy" >/dev/null || need_deps=true
    [ -e "/usr/$arch-linux-gnu/lib/crt1.o" ] || need_deps=true
    command -v "qemu-$arch-static" >/dev/null || need_deps=true
  fi
done
if $need_deps; then
  bash scripts/install-build-deps.sh
fi

failed=()
for rid in "${rids[@]}"; do
  arch=$(triple_arch "$rid")
  out="artifacts/publish/$rid"
  log="artifacts/publish/$rid.log"
  # ILC's intermediate files go outside src/ and are removed first, so ILC runs on every publish
  # and reports its warnings every time (an up-to-date ILC step would print none).
  native_obj="$repo/artifacts/obj/$rid/native/"
  rm -rf "$out" "$native_obj"
  mkdir -p "$out"

  args=(
    publish "$project" -c Release -r "$rid" -o "$out"
    -p:PublishAot=true
    # One warning per call site, also inside packages, instead of one IL2104 per assembly.
    -p:TrimmerSingleWarn=false
    "-p:NativeIntermediateOutputPath=$native_obj"
  )
  if [ "$arch" != "$host_arch" ]; then
    # Cross link: clang --target=<arch>-linux-gnu --sysroot=/ finds Debian's multiarch cross
    # layout (/usr/<arch>-linux-gnu/lib, /usr/lib/gcc-cross/<arch>-linux-gnu/12). A sysroot of
    # /usr/<arch>-linux-gnu would not: clang then looks for usr/lib and the GCC crt files inside it.
    # GNU ld (bfd) here only links x86, hence lld. The host's GNU objcopy only knows x86 ELF, so
    # symbols are stripped with the cross binutils' objcopy.
    args+=(-p:SysRoot=/ -p:LinkerFlavor=lld "-p:ObjCopyName=$arch-linux-gnu-objcopy")
  fi

  echo "==> dotnet ${args[*]}"
  set +e
  dotnet "${args[@]}" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e

  # MSBuild repeats each diagnostic in its summary: list each once.
  warnings=$(grep -E '(warning|error) IL[0-9]{4}:' "$log" | sed -E 's/^ +//' | sort -u || true)
  if [ -n "$warnings" ]; then
    echo >&2
    echo "publish.sh: $rid: trim/AOT warnings (not allowed):" >&2
    echo "$warnings" >&2
    failed+=("$rid")
    continue
  fi
  if [ "$status" -ne 0 ] || [ ! -x "$out/$binary" ]; then
    echo "publish.sh: $rid: publish failed (exit $status), log: $log" >&2
    failed+=("$rid")
    continue
  fi

  # The native binary is all a board needs; edgekube-agent.dbg (its symbols) stays beside it for
  # symbolizing crash dumps, managed .pdb files of referenced projects are of no use.
  rm -f "$out"/*.pdb
  size=$(stat -c %s "$out/$binary")
  echo "==> $rid: $out/$binary: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'))"

  # Proves the binary starts on its architecture (under qemu when it is not this machine's).
  run=("$out/$binary")
  if [ "$arch" != "$host_arch" ]; then
    run=("qemu-$arch-static" -L "/usr/$arch-linux-gnu" "$out/$binary")
  fi
  echo "==> ${run[*]} --version / --help"
  if ! "${run[@]}" --version || ! "${run[@]}" --help; then
    echo "publish.sh: $rid: the published binary does not start" >&2
    failed+=("$rid")
    continue
  fi

  # edgekube-master: self-contained single file (ASP.NET Core, SQLite). The board fleet's master is
  # often a Pi too, hence both RIDs. ReadyToRun would need the crossgen pack for every RID; left out.
  master_out="$out/master"
  rm -rf "$master_out"
  master_args=(
    publish src/EdgeKube.Master/EdgeKube.Master.csproj -c Release -r "$rid" -o "$master_out"
    --self-contained -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true
  )
  echo "==> dotnet ${master_args[*]}"
  if ! dotnet "${master_args[@]}" > "artifacts/publish/$rid-master.log" 2>&1 || [ ! -x "$master_out/edgekube-master" ]; then
    cat "artifacts/publish/$rid-master.log" >&2
    echo "publish.sh: $rid: edgekube-master publish failed" >&2
    failed+=("$rid")
    continue
  fi
  rm -f "$master_out"/*.pdb "$master_out"/*.dbg
  echo "==> $rid: $master_out: $(du -sh "$master_out" | cut -f1) ($(ls "$master_out" | tr '\n' ' '))"
  master_run=("$master_out/edgekube-master")
  if [ "$arch" != "$host_arch" ]; then
    master_run=("qemu-$arch-static" -L "/usr/$arch-linux-gnu" "$master_out/edgekube-master")
  fi
  if ! "${master_run[@]}" --version; then
    echo "publish.sh: $rid: the published edgekube-master does not start" >&2
    failed+=("$rid")
    continue
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "publish.sh: failed for: ${failed[*]}" >&2
  exit 1
fi
