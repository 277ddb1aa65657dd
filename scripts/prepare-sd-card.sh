#!/usr/bin/env bash
# Writes EdgeKube's board setup into the FAT boot partition of a Raspberry Pi OS image file (or of a
# whole SD card device), with mtools: nothing is mounted, no root needed for an image file.
#   bash scripts/prepare-sd-card.sh --image FILE --join FILE [--deb FILE] [--firstboot auto|cloud-init|script]
#     --image      the image (e.g. 2025-xx-xx-raspios-bookworm-arm64-lite.img) or /dev/sdX
#     --join       the join config "edgekube-master node add NAME" printed; its nodeName is the hostname
#     --deb        the agent package (default: artifacts/deb/edgekube-agent_*_arm64.deb when present)
#     --firstboot  cloud-init: write user-data (images that boot with cloud-init);
#                  script: hook edgekube/firstboot.sh into cmdline.txt with systemd.run= (images
#                  without cloud-init, as Raspberry Pi Imager's firstrun.sh);
#                  auto (default): cloud-init when the partition already has a user-data file.
# What lands on the partition:
#   config.txt           + firmware-config/boot/config.txt.append (I2C, 1-Wire, watchdog)
#   cmdline.txt          + firmware-config/boot/cmdline.txt.append (memory cgroup) on its single line
#   edgekube/            firstboot.sh, containerd-config.toml, edgekube-join.yaml, hostname, the .deb
#   user-data            (cloud-init only) firmware-config/firstboot/user-data with the hostname
# Running it twice changes nothing the second time.
set -euo pipefail
cd "$(dirname "$0")/.."

image="" join="" deb="" firstboot=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image=$2; shift 2 ;;
    --image=*) image=${1#*=}; shift ;;
    --join) join=$2; shift 2 ;;
    --join=*) join=${1#*=}; shift ;;
    --deb) deb=$2; shift 2 ;;
    --deb=*) deb=${1#*=}; shift ;;
    --firstboot) firstboot=$2; shift 2 ;;
    --firstboot=*) firstboot=${1#*=}; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "prepare-sd-card.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
fail() { echo "prepare-sd-card.sh: $*" >&2; exit 1; }
[ -n "$image" ] || fail "--image FILE is required"
[ -e "$image" ] || fail "--image $image: no such file"
[ -n "$join" ] || fail "--join FILE is required (the output of: edgekube-master node add NAME)"
[ -f "$join" ] || fail "--join $join: no such file"
case "$firstboot" in auto | cloud-init | script) ;; *) fail "--firstboot must be auto, cloud-init or script" ;; esac
for tool in sfdisk mcopy mtype mmd mdir; do
  command -v "$tool" >/dev/null || fail "$tool not found: sudo apt-get install -y fdisk mtools"
done

node=$(sed -n 's/^nodeName:[[:space:]]*\([a-z0-9.-]*\)[[:space:]]*$/\1/p' "$join" | head -1)
[ -n "$node" ] || fail "--join $join: no nodeName: line (is it the output of edgekube-master node add?)"
grep -q '^kind: AgentConfig' "$join" || fail "--join $join: not an AgentConfig (kind: AgentConfig)"
if [ -z "$deb" ]; then
  deb=$(ls artifacts/deb/edgekube-agent_*_arm64.deb 2>/dev/null | tail -1 || true)
fi
[ -z "$deb" ] || [ -f "$deb" ] || fail "--deb $deb: no such file"

# The boot partition: the first FAT one in the partition table (Raspberry Pi OS: partition 1, type c).
offset=$(sfdisk --json "$image" | python3 -c '
import json, sys
table = json.load(sys.stdin)["partitiontable"]
sector = table.get("sectorsize", 512)
fat = {"1", "4", "6", "b", "c", "e", "ef", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"}
for p in table.get("partitions", []):
    if p["type"].lower() in fat:
        print(p["start"] * sector); break
')
[ -n "$offset" ] || fail "$image: no FAT partition in its partition table"
export MTOOLS_SKIP_CHECK=1
img="$image@@$offset"
mdir -i "$img" ::/ >/dev/null 2>&1 || fail "$image: the partition at byte $offset is not a FAT file system"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
has() { mdir -b -i "$img" "::/$1" >/dev/null 2>&1; }
put() { mcopy -o -i "$img" "$1" "::/$2"; }
# mtools hands text back as written; strip DOS line ends anyway.
get() { mtype -i "$img" "::/$1" | tr -d '\r'; }

if [ "$firstboot" = auto ]; then
  if has user-data; then firstboot=cloud-init; else firstboot=script; fi
fi

# config.txt: our block once, at the end (its [all] closes any model section above it).
marker='# EdgeKube: append to the end of'
if has config.txt; then get config.txt > "$tmp/config.txt"; else : > "$tmp/config.txt"; fi
if ! grep -qF "$marker" "$tmp/config.txt"; then
  { [ ! -s "$tmp/config.txt" ] || [ -z "$(tail -c1 "$tmp/config.txt")" ] || echo; echo; cat firmware-config/boot/config.txt.append; } >> "$tmp/config.txt"
  put "$tmp/config.txt" config.txt
fi

# cmdline.txt: one line; the kernel ignores anything after the first line break.
has cmdline.txt || fail "$image: no cmdline.txt on the boot partition (not a Raspberry Pi OS image?)"
line=$(get cmdline.txt | head -1)
for arg in $(cat firmware-config/boot/cmdline.txt.append); do
  case " $line " in *" $arg "*) ;; *) line="$line $arg" ;; esac
done
if [ "$firstboot" = script ]; then
  for arg in systemd.run=/boot/firmware/edgekube/firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target; do
    case " $line " in *" $arg "*) ;; *) line="$line $arg" ;; esac
  done
fi
printf '%s\n' "$line" > "$tmp/cmdline.txt"
put "$tmp/cmdline.txt" cmdline.txt

has edgekube || mmd -i "$img" ::/edgekube
put firmware-config/firstboot/firstboot.sh edgekube/firstboot.sh
put firmware-config/containerd/config.toml edgekube/containerd-config.toml
put "$join" edgekube/edgekube-join.yaml
printf '%s\n' "$node" > "$tmp/hostname"
put "$tmp/hostname" edgekube/hostname
if [ -n "$deb" ]; then
  put "$deb" "edgekube/$(basename "$deb")"
fi
if [ "$firstboot" = cloud-init ]; then
  sed "s/@HOSTNAME@/$node/" firmware-config/firstboot/user-data > "$tmp/user-data"
  put "$tmp/user-data" user-data
fi

echo "prepare-sd-card.sh: $image: boot partition at byte $offset prepared for node $node (first boot: $firstboot${deb:+, package $(basename "$deb")})"
mdir -i "$img" ::/edgekube
