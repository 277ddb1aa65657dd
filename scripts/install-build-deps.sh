#!/usr/bin/env bash
# Installs, from Debian's packages, what the NativeAOT publish needs (scripts/publish.sh):
#   * clang + lld: the native linker driver NativeAOT uses (linux-x64 and the arm64 cross link);
#   * libc6-dev-arm64-cross, libgcc-12-dev-arm64-cross: arm64 crt files, libc and libgcc to link
#     against, under /usr/aarch64-linux-gnu and /usr/lib/gcc-cross/aarch64-linux-gnu;
#   * binutils-aarch64-linux-gnu: aarch64-linux-gnu-objcopy, used to strip the arm64 binary;
#   * qemu-user-static + libc6-arm64-cross: run the arm64 binary here to check it starts.
# Idempotent: installs only what is missing, and runs apt-get update only when something is.
# Needs root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo bash "$0" "$@"
fi

packages=(
  clang
  lld
  libc6-dev-arm64-cross
  libgcc-12-dev-arm64-cross
  binutils-aarch64-linux-gnu
  qemu-user-static
  libc6-arm64-cross
)

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "build dependencies: all installed"
  exit 0
fi

echo "build dependencies: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
