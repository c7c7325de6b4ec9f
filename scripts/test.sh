#!/usr/bin/env bash
# Runs Berth's whole test suite: installs the test dependencies, checks formatting, lints and the
# layering rules, builds every binary, then runs every test. Run as root (tests make namespaces,
# mounts, cgroups and veths on the real kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
# The same on every host: sbin on PATH (nft, runc, dockerd), and files the tests make readable
# by the unprivileged users their containers run as.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
umask 022

./scripts/deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== layering"
./scripts/check-layers.sh

echo "== build"
cargo build --workspace --bins --locked
# The release shim is linked statically (scripts/build-release.sh): check that this machine can.
cargo rustc --locked -p berth-shim --bin berth-shim -- -C target-feature=+crt-static
case "$(ldd "${CARGO_TARGET_DIR:-target}/debug/berth-shim" 2>&1 || true)" in
  *"statically linked"*|*"not a dynamic executable"*) ;;
  *) echo "test.sh: berth-shim did not link statically" >&2; exit 1 ;;
esac

# critest, the CRI conformance suite, when its kit is installed beside the checkout (a clone
# without it skips the test that runs it): built here, offline with Go 1.19, so that test's time
# goes to testing.
if [ -x ../shared/critest/build-critest.sh ]; then
  echo "== critest"
  CRI_WORK=/tmp/berth-critest ../shared/critest/build-critest.sh
fi

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
