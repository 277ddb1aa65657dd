#!/usr/bin/env bash
# Builds the Debian packages from what scripts/publish.sh left in artifacts/publish/<rid>/:
#   artifacts/deb/edgekube-agent_<version>_<arch>.deb   /usr/bin/edgekube-agent, /etc/edgekube/agent.yaml
#       (conffile), /etc/edgekube/manifests, the unit and the containerd drop-in under /lib/systemd/system,
#       /var/lib/edgekube
#   artifacts/deb/edgekube-master_<version>_<arch>.deb  /usr/lib/edgekube-master/ (linked from
#       /usr/bin/edgekube-master), /etc/default/edgekube-master (conffile), the unit, /var/lib/edgekube-master
# for each RID given (default linux-x64 linux-arm64 -> amd64, arm64), then the release tarballs
#   artifacts/edgekube-<version>-<rid>.tar.gz  both binaries, systemd/, firmware-config/, the .debs' scripts
# Maintainer scripts (packaging/<pkg>/postinst, prerm, postrm) create the directories, enable the unit
# and start it only where systemd runs, through deb-systemd-invoke (so policy-rc.d is honoured).
# dpkg-deb --root-owner-group builds without fakeroot. Usage: bash scripts/package-deb.sh [RID...]
set -euo pipefail
cd "$(dirname "$0")/.."

rids=("$@")
[ "${#rids[@]}" -gt 0 ] || rids=(linux-x64 linux-arm64)
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)
[ -n "$version" ] || { echo "package-deb.sh: no <Version> in Directory.Build.props" >&2; exit 1; }
maintainer="EdgeKube maintainers <edgekube@example.org>"
out=artifacts/deb
mkdir -p "$out"

deb_arch() {
  case "$1" in
    linux-x64) echo amd64 ;;
    linux-arm64) echo arm64 ;;
    *) echo "package-deb.sh: unsupported RID '$1'" >&2; return 1 ;;
  esac
}

# The newest GLIBC_x.y symbol version an ELF file needs (readelf reads any architecture's ELF).
glibc_needed() {
  readelf --dyn-syms -W "$@" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

# Files every package carries under /usr/share/doc/<pkg> (Debian policy 12.5 and 12.7).
doc_files() {
  local pkg=$1 root=$2 doc="$2/usr/share/doc/$1"
  install -d -m 0755 "$doc"
  cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: EdgeKube
Source: https://github.com/edgekube/edgekube

Files: *
Copyright: 2025-2026 EdgeKube authors
License: EdgeKube
 No licence has been granted yet: all rights reserved by the EdgeKube authors.
 The binary includes the .NET runtime and NuGet packages under their own
 licences (MIT for .NET, MQTTnet, YamlDotNet, KubernetesClient; BSD-3-Clause
 for Google.Protobuf; Apache-2.0 for Grpc.Net.Client).
COPYRIGHT
  chmod 0644 "$doc/copyright"
  printf '%s (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
    "$pkg" "$version" "$version" "$maintainer" "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
    | gzip -9n > "$doc/changelog.gz"
  chmod 0644 "$doc/changelog.gz"
}

# Lintian overrides, each with its reason (Debian policy's way to record a deliberate deviation).
overrides() {
  local pkg=$1 root=$2; shift 2
  install -d -m 0755 "$root/usr/share/lintian/overrides"
  printf '%s\n' "$@" > "$root/usr/share/lintian/overrides/$pkg"
  chmod 0644 "$root/usr/share/lintian/overrides/$pkg"
}

control_files() {
  local pkg=$1 root=$2
  install -d -m 0755 "$root/DEBIAN"
  for script in postinst prerm postrm; do
    install -m 0755 "packaging/${pkg#edgekube-}/$script" "$root/DEBIAN/$script"
  done
  # Every file under /etc is a conffile: dpkg keeps a locally changed one on upgrade and asks.
  (cd "$root" && find etc -type f | sed 's:^:/:' | sort) > "$root/DEBIAN/conffiles"
  chmod 0644 "$root/DEBIAN/conffiles"
}

build_deb() {
  local root=$1
  find "$root" -type d -exec chmod g-w,o-w {} +
  dpkg-deb --root-owner-group -Zxz -z3 --build "$root" "$out" >/dev/null
}

for rid in "${rids[@]}"; do
  arch=$(deb_arch "$rid")
  case "$rid" in
    linux-arm64) strip_tool=aarch64-linux-gnu-strip ;;
    *) strip_tool=strip ;;
  esac
  pub="artifacts/publish/$rid"
  [ -x "$pub/edgekube-agent" ] || { echo "package-deb.sh: $pub/edgekube-agent missing: run scripts/publish.sh $rid first" >&2; exit 1; }
  [ -x "$pub/master/edgekube-master" ] || { echo "package-deb.sh: $pub/master/edgekube-master missing: run scripts/publish.sh $rid first" >&2; exit 1; }
  staging="artifacts/deb-staging/$rid"
  rm -rf "$staging"

  # --- edgekube-agent
  root="$staging/edgekube-agent"
  install -d -m 0755 "$root/usr/bin" "$root/etc/edgekube/manifests" "$root/lib/systemd/system/containerd.service.d"
  install -d -m 0700 "$root/var/lib/edgekube"
  install -m 0755 "$pub/edgekube-agent" "$root/usr/bin/edgekube-agent"
  install -m 0600 packaging/agent/agent.yaml "$root/etc/edgekube/agent.yaml"
  install -m 0644 systemd/edgekube-agent.service "$root/lib/systemd/system/"
  install -m 0644 systemd/containerd.service.d/10-edgekube.conf "$root/lib/systemd/system/containerd.service.d/"
  doc_files edgekube-agent "$root"
  overrides edgekube-agent "$root" \
    "# The .NET runtime links zlib-ng into every NativeAOT binary (System.IO.Compression); there is no system-zlib build of it." \
    "embedded-library zlib [usr/bin/edgekube-agent]" \
    "# The join config holds the node's MQTT password; the state holds pod specs with their secrets." \
    "non-standard-file-perm 0600 != 0644 [etc/edgekube/agent.yaml]" \
    "non-standard-dir-perm 0700 != 0755 [var/lib/edgekube/]"
  control_files edgekube-agent "$root"
  glibc=$(glibc_needed "$root/usr/bin/edgekube-agent")
  cat > "$root/DEBIAN/control" <<CONTROL
Package: edgekube-agent
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= $glibc), containerd (>= 1.6) | containerd.io (>= 1.6), runc, containernetworking-plugins
Recommends: libssl3 | libssl3t64
Section: admin
Priority: optional
Homepage: https://github.com/edgekube/edgekube
Description: EdgeKube node agent: a lightweight kubelet for ARM boards
 edgekube-agent runs the Kubernetes pods an EdgeKube master schedules onto
 this board (received over MQTT) and static pods from /etc/edgekube/manifests,
 through containerd's CRI, and reports pod and node status back. Put the join
 config printed by "edgekube-master node add" into /etc/edgekube/agent.yaml.
CONTROL
  build_deb "$root"

  # --- edgekube-master
  root="$staging/edgekube-master"
  install -d -m 0755 "$root/usr/bin" "$root/usr/lib/edgekube-master" "$root/etc/default" "$root/lib/systemd/system"
  install -d -m 0700 "$root/var/lib/edgekube-master"
  cp -r "$pub/master/." "$root/usr/lib/edgekube-master/"
  rm -f "$root/usr/lib/edgekube-master/"*.pdb "$root/usr/lib/edgekube-master/"*.dbg
  find "$root/usr/lib/edgekube-master" -type f -exec chmod 0644 {} +
  chmod 0755 "$root/usr/lib/edgekube-master/edgekube-master"
  ln -s ../lib/edgekube-master/edgekube-master "$root/usr/bin/edgekube-master"
  install -m 0644 packaging/master/default "$root/etc/default/edgekube-master"
  install -m 0644 systemd/edgekube-master.service "$root/lib/systemd/system/"
  # SQLite's native library comes unstripped in its NuGet package (the bundle itself must not be stripped).
  find "$root/usr/lib/edgekube-master" -name '*.so' -exec "$strip_tool" --strip-unneeded {} +
  doc_files edgekube-master "$root"
  overrides edgekube-master "$root" \
    "# The .NET runtime in the self-contained bundle carries zlib-ng (System.IO.Compression); there is no system-zlib build of it." \
    "embedded-library zlib [usr/lib/edgekube-master/edgekube-master]" \
    "# The cluster's objects, PKI keys and node credentials." \
    "non-standard-dir-perm 0700 != 0755 [var/lib/edgekube-master/]"
  control_files edgekube-master "$root"
  glibc=$(glibc_needed $(find "$root/usr/lib/edgekube-master" -type f))
  cat > "$root/DEBIAN/control" <<CONTROL
Package: edgekube-master
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= $glibc)
Recommends: libssl3 | libssl3t64, kubectl
Section: admin
Priority: optional
Homepage: https://github.com/edgekube/edgekube
Description: EdgeKube master: Kubernetes control plane for fleets of boards
 edgekube-master serves the Kubernetes API that kubectl drives, keeps the
 cluster in SQLite, schedules pods onto boards and talks to their agents over
 its embedded MQTT broker. "edgekube-master node add NAME" prints a board's
 join config. Flags go into /etc/default/edgekube-master.
CONTROL
  build_deb "$root"

  # --- release tarball, for boards without dpkg
  name="edgekube-$version-$rid"
  tar_root="$staging/$name"
  install -d "$tar_root/bin" "$tar_root/lib/edgekube-master" "$tar_root/systemd" "$tar_root/packaging"
  install -m 0755 "$pub/edgekube-agent" "$tar_root/bin/"
  cp -r "$staging/edgekube-master/usr/lib/edgekube-master/." "$tar_root/lib/edgekube-master/"
  ln -s ../lib/edgekube-master/edgekube-master "$tar_root/bin/edgekube-master"
  cp -r systemd/. "$tar_root/systemd/"
  cp -r firmware-config "$tar_root/firmware-config"
  cp -r packaging/. "$tar_root/packaging/"
  tar --sort=name --owner=0 --group=0 --numeric-owner -czf "artifacts/$name.tar.gz" -C "$staging" "$name"
  echo "==> artifacts/$name.tar.gz"
done

ls -l "$out"/*.deb
