#!/usr/bin/env bash
# Architecture invariants that the dependency graph can prove (see ARCHITECTURE.md): the runtime
# and the shim are synchronous and know nothing of gRPC, HTTP or images; the client never links
# the daemon's or containerd's protocol; only berth-api and its two users know the Engine API.
# Fails closed: a crate whose dependencies cargo cannot list fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
declare -A deps
# The names of everything crate $1 links (normal dependencies, not dev ones), one per line.
deps_of() {
  if [ -z "${deps[$1]+set}" ]; then
    local out
    if ! out=$(cargo tree --locked -e normal -p "$1" --prefix none -f '{p}' 2>&1); then
      echo "layering: cannot list the dependencies of $1: $out"
      fail=1
      deps[$1]=""
      return
    fi
    deps[$1]=$(awk '{print $1}' <<<"$out" | sort -u)
  fi
}
forbid() { # crate, dependency, reason
  deps_of "$1"
  if grep -qx -- "$2" <<<"${deps[$1]}"; then
    echo "layering: $1 must not depend on $2 ($3)"; fail=1
  fi
}
for dep in tokio tonic hyper axum berth-proto berth-api oci-client; do
  forbid berth-runc "$dep" "the runtime is sync and knows nothing of images, gRPC or HTTP"
done
for dep in tokio tonic hyper axum berth-api clap; do
  forbid berth-shim "$dep" "the shim stays small and sync, with no argument-parser crate"
done
for dep in tokio tonic hyper anyhow berth-proto; do
  forbid berth-shim-protocol "$dep" "the shim's protocol is plain serde types the small shim links"
done
forbid berth berth-proto "the client speaks only the Engine API"
forbid berth-image tokio "the image library is synchronous; berthd runs it on blocking threads"
forbid berth-net tokio "networking is synchronous; berthd runs it on blocking threads"
forbid berth-containerd berth-net "networks are berthd's; containerd joins the namespace it is given"
forbid berth-runc berth-image "the runtime knows nothing of images"
forbid berth-containerd berth-image "containerd owns no images"
for dep in tokio tonic hyper berth-proto berth-image; do
  forbid berth-oci "$dep" "the shared spec defaults are synchronous and know no protocol or image store"
done
forbid berth-cri berthd "the CRI server is its own binary over berth-image and berth-containerd, not a part of the Docker engine"
for crate in berth-containerd berth-runc berth-shim berth-image berth-net berth-cgroups berth-inroot berth-cri berth-oci; do
  for dep in berth-api bollard-stubs; do
    forbid "$crate" "$dep" "only berth-api, berthd and the client know the Engine API's JSON"
  done
done
for dep in berth-seccomp libseccomp; do
  forbid berthd "$dep" "berthd never runs or links the OCI runtime's parts; containers start through berth-containerd"
done
for dep in tokio tonic hyper oci-spec serde tar; do
  forbid berth-inroot "$dep" "the in-root path helper is a small leaf on rustix alone"
  forbid berth-failpoint "$dep" "failpoints are a leaf on rustix alone"
done
[ "$fail" = 0 ] && echo "layering: ok"
exit "$fail"
