#!/usr/bin/env bash
# Installs what upnext needs and is missing; fast no-op when everything is present.
#  - Debian: nats-server (event stream, KV, request/reply), libfaiss-dev (static faiss for faiss-node),
#    libopenblas0-serial (fast BLAS for faiss training), python3-grpcio + python3-grpc-tools (interop
#    test client: a second, independent gRPC implementation).
#  - npm packages (install scripts denied: see package.json allowScripts), then faiss-node built
#    against libfaiss by scripts/build-faiss-node.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
need=()
for pkg in nats-server libfaiss-dev libopenblas0-serial python3-grpcio python3-grpc-tools python3-protobuf; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "[install] apt packages: ${need[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[install] npm packages"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi
scripts/build-faiss-node.sh
dt=$(( $(date +%s) - t0 ))
[ "$dt" -gt 2 ] && echo "[install] done in ${dt} s"
exit 0
