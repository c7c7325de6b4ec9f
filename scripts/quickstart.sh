#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine, as root: installs what Berth needs, builds it in
# release mode, starts berth-containerd and berthd on their default sockets, makes a local busybox
# image (docker import) and runs a container from it with the docker CLI. It goes as far as what
# is built today and says what is missing. Everything it starts is logged under /var/log/berth-quickstart/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/target/release"
LOGS=/var/log/berth-quickstart
mkdir -p "$LOGS"
ran=(); missing=(); failed=()

say() { printf '\n==> %s\n' "$*"; }

say "installing Debian packages (scripts/deps.sh)"
./scripts/deps.sh || { echo "quickstart: installing packages failed"; exit 1; }

say "building Berth in release mode (scripts/build-release.sh: cargo build --release, static shim and daemons)"
./scripts/build-release.sh || { echo "quickstart: the build failed"; exit 1; }
ran+=("release build: $BIN/{berth,berthd,berth-containerd,berth-shim,berth-runc}")

# Starts a daemon in the background and waits for its socket; records the outcome.
start_daemon() { # name socket args...
  local name=$1 sock=$2; shift 2
  if [ -S "$sock" ] && pgrep -x "$name" >/dev/null; then ran+=("$name already running on $sock"); return 0; fi
  say "starting $name on $sock"
  "$BIN/$name" "$@" >"$LOGS/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do
    [ -S "$sock" ] && { ran+=("$name started (pid $pid), socket $sock"); return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null
  missing+=("$name: $(tail -n 1 "$LOGS/$name.log")")
  return 1
}

mkdir -p /run/berth /var/lib/berth
start_daemon berth-containerd /run/berth/containerd.sock
if start_daemon berthd /run/berth/berth.sock --containerd unix:///run/berth/containerd.sock; then
  say "making a local busybox image (docker import) and running a container from it"
  work=$(mktemp -d)
  mkdir -p "$work/rootfs/bin"
  cp /bin/busybox "$work/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    mkdir -p "$work/rootfs/$(dirname "$applet")"
    [ -e "$work/rootfs/$applet" ] || ln -s /bin/busybox "$work/rootfs/$applet"
  done
  mkdir -p "$work/rootfs"/{proc,sys,dev,tmp,etc}
  export DOCKER_HOST=unix:///run/berth/berth.sock
  if tar -C "$work/rootfs" -cf - . | docker import -c 'CMD ["sh"]' - busybox:quickstart >/dev/null \
    && out=$(docker run --rm busybox:quickstart echo "hi from a berth container") \
    && [ "$out" = "hi from a berth container" ]; then
    ran+=("docker import + docker run --rm busybox:quickstart (the docker CLI against berthd): $out")
  else
    failed+=("docker run against berthd (see $LOGS/berthd.log)")
  fi
  if "$BIN/berth" version >/dev/null 2>&1; then
    ran+=("berth version")
  else
    missing+=("berth: the client is not built yet (issue #7); use the docker CLI")
  fi
  rm -rf "$work"
else
  say "no daemon yet: running a busybox container straight from an OCI bundle with berth-runc"
  bundle=$(mktemp -d /tmp/berth-quickstart-XXXX)
  mkdir -p "$bundle/rootfs/bin"
  cp /bin/busybox "$bundle/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    mkdir -p "$bundle/rootfs/$(dirname "$applet")"
    [ -e "$bundle/rootfs/$applet" ] || ln -s /bin/busybox "$bundle/rootfs/$applet"
  done
  mkdir -p "$bundle/rootfs"/{proc,sys,dev,tmp,etc}
  if (cd "$bundle" && "$BIN/berth-runc" spec 2>/dev/null) && [ -f "$bundle/config.json" ]; then
    sed -i 's/"sh"/"echo", "hi from a berth-runc container"/; s/"terminal": true/"terminal": false/' "$bundle/config.json"
    if "$BIN/berth-runc" --root /run/berth/runc run --bundle "$bundle" "quickstart-$$"; then
      ran+=("berth-runc run of a busybox bundle ($bundle)")
    else
      failed+=("berth-runc run of a busybox bundle")
    fi
  else
    missing+=("berth-runc spec/run: the OCI runtime is not built yet (issue #3)")
  fi
  rm -rf "$bundle"
fi

say "summary"
for r in "${ran[@]}"; do echo "  ran:     $r"; done
for m in "${missing[@]}"; do echo "  missing: $m"; done
for f in "${failed[@]}"; do echo "  FAILED:  $f"; done
echo "  logs:    $LOGS"
echo "  docker CLI: DOCKER_HOST=unix:///run/berth/berth.sock docker ps"
[ ${#failed[@]} -eq 0 ]
