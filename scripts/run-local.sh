#!/usr/bin/env bash
# EdgeKube's main job on this machine: make sure containerd (with runc and the CNI plugins) is
# installed and running, then run edgekube-agent with the pods in examples/ as static pods.
#   sudo bash scripts/run-local.sh [--pod-manifest-path DIR] [other edgekube-agent flags]
# containerd: a containerd of EdgeKube's own is started unless it already runs (config
# /etc/edgekube/containerd.toml, state under /var/lib/edgekube/containerd, socket
# /run/edgekube/containerd.sock, log /var/log/edgekube-containerd.log), so the distribution's
# containerd and its configuration are left alone. Its sandbox ("pause") image and the examples'
# image are built locally from Debian's busybox-static: no registry or internet is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,DOTNET_ROOT bash "$0" "$@"
fi

bash scripts/install-deps.sh

images="$repo/artifacts/images"
bash scripts/build-test-image.sh "$images"

root=/var/lib/edgekube/containerd
state=/run/edgekube/containerd-state
sock=/run/edgekube/containerd.sock
mkdir -p "$root" "$state" /run/edgekube /etc/edgekube/cni/net.d

if ! ctr --address "$sock" version >/dev/null 2>&1; then
  cat > /etc/edgekube/cni/net.d/10-edgekube.conflist <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "edgekube",
  "plugins": [
    {"type": "bridge", "bridge": "edgekube0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  mkdir -p /etc/edgekube/certs.d/127.0.0.1:5000
  cat > /etc/edgekube/certs.d/127.0.0.1:5000/hosts.toml <<'TOML'
server = "http://127.0.0.1:5000"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
TOML
  cat > /etc/edgekube/containerd.toml <<TOML
version = 2
root = "$root"
state = "$state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/edgekube/pause:test"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/edgekube/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/edgekube/certs.d"
TOML
  echo "==> starting containerd (log: /var/log/edgekube-containerd.log)"
  nohup containerd --config /etc/edgekube/containerd.toml >>/var/log/edgekube-containerd.log 2>&1 &
  for _ in $(seq 1 60); do
    ctr --address "$sock" version >/dev/null 2>&1 && break
    sleep 0.5
  done
  ctr --address "$sock" version >/dev/null
fi

for archive in "$images"/*.tar; do
  ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
done

echo "==> edgekube-agent: static pods from ${EDGEKUBE_MANIFESTS:-$repo/examples}; http://127.0.0.1:10255/pods"
exec dotnet run --project src/EdgeKube.Agent -c Release -- \
  --pod-manifest-path "${EDGEKUBE_MANIFESTS:-$repo/examples}" \
  --containerd-socket "$sock" \
  --state-dir /var/lib/edgekube \
  --pod-logs-dir /var/log/pods \
  "$@"
