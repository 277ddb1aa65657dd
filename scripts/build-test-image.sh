#!/usr/bin/env bash
# Builds EdgeKube's local images from Debian's busybox-static with umoci, so nothing is pulled from
# the internet: a busybox image (apps in the examples and tests) and a pause image (the CRI
# sandbox image). Writes docker-archive tarballs that `ctr images import` and `skopeo` take:
#   <out>/busybox.tar   docker.io/edgekube/busybox:test
#   <out>/pause.tar     docker.io/edgekube/pause:test
#   bash scripts/build-test-image.sh OUT_DIR
# Rebuilds only when the busybox binary changed. Needs umoci, skopeo, busybox-static.
set -euo pipefail

out=${1:?usage: build-test-image.sh OUT_DIR}
mkdir -p "$out"
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "build-test-image.sh: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

stamp="$out/.busybox-$(sha256sum "$busybox" | cut -c1-16)"
if [ -f "$stamp" ] && [ -f "$out/busybox.tar" ] && [ -f "$out/pause.tar" ]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build NAME REF ENTRYPOINT-JSON-ARGS...: one image whose rootfs is busybox and its applets.
build() {
  local name=$1 ref=$2
  shift 2
  local layout="$work/$name-oci" bundle="$work/$name-bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:test"
  umoci unpack --rootless --image "$layout:test" "$bundle" >/dev/null
  local rootfs="$bundle/rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/root" "$rootfs/var/www"
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$rootfs/etc/group"
  umoci repack --image "$layout:test" "$bundle" >/dev/null
  umoci config --image "$layout:test" --os linux --architecture "$(dpkg --print-architecture)" \
    --config.env PATH=/bin --config.workingdir / "$@"
  umoci gc --layout "$layout"
  rm -f "$out/$name.tar"
  skopeo copy --quiet "oci:$layout:test" "docker-archive:$out/$name.tar:$ref"
}

build busybox docker.io/edgekube/busybox:test --config.cmd sh
# The sandbox's process: sleeps until told to stop, and stops at once on SIGTERM (PID 1 has no default handlers).
build pause docker.io/edgekube/pause:test \
  --config.entrypoint sh --config.entrypoint -c \
  --config.entrypoint 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'

rm -f "$out"/.busybox-*
touch "$stamp"
echo "images: $out/busybox.tar $out/pause.tar"
