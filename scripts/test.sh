#!/usr/bin/env bash
# The project's test command (README: "Test"). Does its own set-up on a fresh machine of this kind
# (as root: Debian packages), then runs formatting, lints, the pure-core dependency check, the
# docs build, and the whole test suite with cargo-nextest (falling back to `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- set-up -----------------------------------------------------------------------------------
# Debian packages the tests use. kubectl 1.32 is preinstalled on these machines; the
# create-secret differential tests run it (KUBEPULL_SKIP_KUBECTL=1 skips them where it is absent).
APT_PACKAGES=(ca-certificates protobuf-compiler docker-registry apache2-utils openssl runc busybox-static umoci skopeo etcd-server containernetworking-plugins iproute2 iptables)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
fi
if ! command -v kubectl >/dev/null; then
  echo "warning: kubectl not found; the kubectl differential tests will fail unless KUBEPULL_SKIP_KUBECTL=1" >&2
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true
# cargo-deny (licences, bans, sources; deny.toml) from crates.io, built once per machine with
# `cargo install --locked` (4.5 CPU-minutes: about 3 minutes on 2 idle cores; nothing on later
# runs). The check itself runs offline in 3 s. KUBEPULL_SKIP_DENY=1 skips both.
if [[ -z ${KUBEPULL_SKIP_DENY:-} ]] && ! cargo deny --version >/dev/null 2>&1; then
  log "installing cargo-deny (once)"
  cargo install --locked cargo-deny
fi

# --- static checks ----------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ -z ${KUBEPULL_SKIP_DENY:-} ]]; then
  log "cargo deny (licences, bans, sources; offline)"
  # the check reads every package in Cargo.lock, those of other platforms too (a build fetches
  # only this one's): fetch them first, a no-op once they are in cargo's cache
  cargo fetch --locked -q || echo "warning: cargo fetch failed (offline?); cargo deny may not find every package" >&2
  cargo deny --offline --log-level error check bans licenses sources
fi

log "pure-core dependency check"
scripts/check-core-deps.sh

log "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q

# --- tests ------------------------------------------------------------------------------------
log "doc tests"
cargo test --workspace --doc --locked -q 2>&1 | tail -n 3

log "test suite"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --failure-output final --status-level fail
else
  cargo test --workspace --locked --no-fail-fast
fi

# Fuzzing (README: "Fuzzing"): every cargo-fuzz target in fuzz/ for a few seconds from its seed
# corpus; a crash fails the run with the reproducer's path. KUBEPULL_SKIP_FUZZ=1 skips it.
if [[ -z ${KUBEPULL_SKIP_FUZZ:-} ]]; then
  log "fuzz targets (scripts/fuzz.sh)"
  scripts/fuzz.sh
fi
