#!/usr/bin/env bash
# Installs the Debian packages Berth's build and tests need. Idempotent; run as root.
set -euo pipefail
PACKAGES=(
  busybox-static      # the test image and bundles are made from /bin/busybox
  docker-registry     # the real registry the tests push to and pull from
  apache2-utils       # htpasswd (bcrypt) for the registry's basic auth
  protobuf-compiler   # protoc, for the gRPC protocol crate
  libseccomp-dev      # seccomp filters in berth-runc
  pkg-config
  libssl-dev openssl  # the client's TLS (system OpenSSL); the TLS test makes its certificates
  iproute2 nftables iptables
  runc                # the reference runtime conformance checks compare with
  docker.io           # dockerd 20.10 + containerd: tests run berth-runc as a Docker runtime
  python3-docker      # docker-py, the Python SDK the compatibility tests drive berthd with
  tini                # tini-static (docker-init) for run --init
  docker-compose      # compose 1.29 (on docker-py), driven against berthd by the compose test
  ca-certificates curl
  # critest (the CRI conformance suite, when its kit is present): Go to build it offline,
  # and what its stand-in images are made with
  golang-1.19-go umoci skopeo gcc libc6-dev
  containernetworking-plugins  # CNI plugins (bridge, host-local, portmap, loopback) for berth-cri pods
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "deps: all Debian packages present"
fi
# The Debian package starts a system-wide registry on :5000; tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "deps: cargo-nextest missing; tests will run with cargo test"
fi
