#!/bin/sh
# EdgeKube first boot of a Raspberry Pi (Raspberry Pi OS Bookworm 64-bit), no keyboard attached.
# scripts/prepare-sd-card.sh puts this file, the join config, the containerd config and the agent
# .deb into <boot partition>/edgekube/. Two stages:
#
#   firstboot.sh            run once by the kernel command line (systemd.run=, as Raspberry Pi Imager's
#                           firstrun.sh), before the network: hostname, i2c-dev, systemd's hardware
#                           watchdog, and a unit that runs stage two once the network is up; then it
#                           removes its own systemd.run= arguments from cmdline.txt and the board reboots.
#   firstboot.sh --install  run by edgekube-firstboot.service (or by cloud-init's runcmd): installs
#                           containerd, runc and the CNI plugins, the board's containerd config, the
#                           agent .deb and the join config, and enables and starts both services.
#
# Every step can run again: a stage that failed half-way is retried on the next boot.
set -eu

boot=/boot/firmware
[ -d "$boot/edgekube" ] || boot=/boot
src="$boot/edgekube"
log() { echo "edgekube-firstboot: $*"; }

# nodeName from the join config "edgekube-master node add" printed (or the edgekube/hostname file).
node_name() {
  if [ -s "$src/hostname" ]; then
    tr -d ' \r\n' < "$src/hostname"
  elif [ -f "$src/edgekube-join.yaml" ]; then
    sed -n 's/^nodeName:[[:space:]]*\([a-z0-9.-]*\).*/\1/p' "$src/edgekube-join.yaml" | head -1
  fi
}

stage_one() {
  name=$(node_name)
  if [ -n "$name" ]; then
    log "hostname $name"
    old=$(cat /etc/hostname 2>/dev/null || echo raspberrypi)
    echo "$name" > /etc/hostname
    sed -i "s/127\.0\.1\.1.*$old\$/127.0.1.1\t$name/" /etc/hosts
    grep -q "127.0.1.1" /etc/hosts || printf '127.0.1.1\t%s\n' "$name" >> /etc/hosts
  fi

  # /dev/i2c-1 for sensors (raspi-config's I2C switch does the same with dtparam=i2c_arm=on).
  echo i2c-dev > /etc/modules-load.d/i2c-dev.conf
  # dtparam=watchdog=on gives /dev/watchdog; systemd feeds it and reboots a hung board.
  mkdir -p /etc/systemd/system.conf.d
  printf '[Manager]\nRuntimeWatchdogSec=15\nRebootWatchdogSec=2min\n' > /etc/systemd/system.conf.d/edgekube-watchdog.conf

  install -m 0755 "$0" /usr/local/sbin/edgekube-firstboot
  cat > /etc/systemd/system/edgekube-firstboot.service <<UNIT
[Unit]
Description=EdgeKube first boot: containerd, the agent and its join config
Wants=network-online.target
After=network-online.target time-sync.target
ConditionPathExists=!/var/lib/edgekube/firstboot.done

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/edgekube-firstboot --install
# apt-get may wait for the clock and the mirrors on a slow link.
TimeoutStartSec=30min
Restart=on-failure
RestartSec=30s

[Install]
WantedBy=multi-user.target
UNIT
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/edgekube-firstboot.service /etc/systemd/system/multi-user.target.wants/edgekube-firstboot.service

  # Run once: take our systemd.run= arguments off the kernel command line again.
  sed -i 's| systemd.run=[^ ]*edgekube/firstboot.sh||; s| systemd.run_success_action=reboot||; s| systemd.unit=kernel-command-line.target||' "$boot/cmdline.txt"
  log "stage one done; rebooting into stage two"
}

stage_two() {
  export DEBIAN_FRONTEND=noninteractive
  apt_opts="-y -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef"

  # The board's containerd config first: the package then keeps it (confold) and starts with it.
  install -D -m 0644 "$src/containerd-config.toml" /etc/containerd/config.toml
  mkdir -p /etc/cni/net.d

  log "installing containerd, runc, CNI plugins"
  apt-get update
  # shellcheck disable=SC2086
  apt-get install $apt_opts containerd runc containernetworking-plugins

  deb=$(ls "$src"/edgekube-agent_*_arm64.deb 2>/dev/null | tail -1 || true)
  if [ -n "$deb" ]; then
    log "installing $(basename "$deb")"
    # shellcheck disable=SC2086
    apt-get install $apt_opts "$deb"
  elif ! command -v edgekube-agent >/dev/null; then
    log "no edgekube-agent_*_arm64.deb in $src and no agent installed"; exit 1
  fi

  if [ -f "$src/edgekube-join.yaml" ]; then
    install -D -m 0600 "$src/edgekube-join.yaml" /etc/edgekube/agent.yaml
    # The node's MQTT password must not stay on the world-readable FAT partition.
    rm -f "$src/edgekube-join.yaml"
  fi

  systemctl daemon-reload
  systemctl enable containerd edgekube-agent
  systemctl restart containerd
  systemctl restart edgekube-agent
  edgekube-agent check || log "edgekube-agent check reports problems (above); the agent keeps retrying"
  mkdir -p /var/lib/edgekube
  touch /var/lib/edgekube/firstboot.done
  systemctl disable edgekube-firstboot.service 2>/dev/null || true
  log "done: the board joins as $(node_name || true)"
}

case "${1:-}" in
  --install) stage_two ;;
  "") stage_one ;;
  *) echo "usage: $0 [--install]" >&2; exit 2 ;;
esac
