#!/usr/bin/env bash
# Architecture invariants that the dependency graph can prove (see ARCHITECTURE.md):
# the runtime and the shim are synchronous and know nothing of gRPC, HTTP or images;
# the client never links the daemon's or containerd's protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
forbid() { # crate, dependency, reason
  # A dependency reachable only through dev-dependencies prints nothing (and exits 0).
  if cargo tree --locked -e normal -p "$1" -i "$2" 2>/dev/null | grep -q .; then
    echo "layering: $1 must not depend on $2 ($3)"; fail=1
  fi
}
for dep in tokio tonic hyper axum berth-proto berth-api oci-client; do
  forbid berth-runc "$dep" "the runtime is sync and knows nothing of images, gRPC or HTTP"
done
for dep in tokio tonic hyper axum berth-api; do
  forbid berth-shim "$dep" "the shim stays small and sync"
done
forbid berth berth-proto "the client speaks only the Engine API"
forbid berth-image tokio "the image library is synchronous; berthd runs it on blocking threads"
forbid berth-net tokio "networking is synchronous; berthd runs it on blocking threads"
forbid berth-containerd berth-net "networks are berthd's; containerd joins the namespace it is given"
forbid berth-runc berth-image "the runtime knows nothing of images"
forbid berth-containerd berth-image "containerd owns no images"
forbid berth-containerd berth-api "containerd knows nothing of the Engine API"
for dep in tokio tonic hyper oci-spec serde tar; do
  forbid berth-inroot "$dep" "the in-root path helper is a small leaf on rustix alone"
done
[ "$fail" = 0 ] && echo "layering: ok"
exit "$fail"
