#!/usr/bin/env bash
# Release build of every Berth binary into target/release. The long-lived processes are then
# relinked statically (glibc's crt-static): berth-shim, one per running container, and the two
# daemons. Without the dynamic loader, libgcc_s and the pages of libc and libm touched at
# start-up they stay smaller: berth-shim 1.5 MB RSS instead of 2.3, berthd and berth-containerd
# about 1.7 MB less each when idle. The short-lived programs, berth-runc (executed two or three
# times per container operation) and the berth client, are linked statically and
# position-dependent (like Debian's runc): without the dynamic loader and the 15,000 start-up
# relocations of a static PIE each execution starts about 1 ms sooner. The long-lived
# processes keep ASLR. Extra arguments go to the
# first `cargo build` (e.g. -j2).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --locked "$@"
# Only the final link of each changes; their dependencies are reused. A later plain
# `cargo build --release` links them dynamically again.
for bin in berth-shim berthd berth-containerd berth-runc berth; do
  flags=(-C target-feature=+crt-static)
  case "$bin" in berth-runc|berth) flags+=(-C relocation-model=static) ;; esac
  cargo rustc --release --locked -p "$bin" --bin "$bin" -- "${flags[@]}"
  case "$(ldd "${CARGO_TARGET_DIR:-target}/release/$bin" 2>&1 || true)" in
    *"statically linked"*|*"not a dynamic executable"*) ;;
    *) echo "build-release: $bin is still dynamically linked" >&2; exit 1 ;;
  esac
done
echo "build-release: binaries in target/release (all static but berth-bench)"
