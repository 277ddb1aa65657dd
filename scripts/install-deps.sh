#!/usr/bin/env bash
# Installs, from Debian's packages, the real components EdgeKube runs and its tests drive:
#   containerd, runc, CNI plugins (pods), iproute2 + iptables (CNI bridge, portmap, node routes),
#   umoci + busybox-static (test and pause images built locally, nothing pulled from the internet),
#   skopeo + docker-registry (a local OCI registry for image pulls), mosquitto (an external broker),
#   etcd-server (the store for several masters), mtools/dosfstools (SD card images), lintian/dpkg-dev
#   (packages), systemd (systemd-analyze verify of the units). Idempotent: installs only what is missing, runs apt-get update only when needed.
# Needs root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo bash "$0" "$@"
fi

packages=(
  containerd
  runc
  containernetworking-plugins
  iproute2
  iptables
  umoci
  busybox-static
  skopeo
  docker-registry
  mosquitto
  mosquitto-clients
  etcd-server
  etcd-client
  mtools
  dosfstools
  fdisk
  dpkg-dev
  lintian
  systemd
  curl
  ca-certificates
  python3
  python3-yaml
  file
  procps
)

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "runtime dependencies: all installed"
else
  echo "runtime dependencies: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Services the packages would start on their own (docker-registry, mosquitto, etcd) are not
  # wanted: the tests start their own on free ports. policy-rc.d keeps them from starting.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
  fi
fi
