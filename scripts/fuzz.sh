#!/usr/bin/env bash
# Builds the cargo-fuzz crate (fuzz/) with AddressSanitizer and libFuzzer, and runs every target
# for a short time, starting from the seed corpus in fuzz/corpus/<target> (README: "Fuzzing").
# Fails when a target crashes, printing the reproducer and the command that replays it.
#
#   scripts/fuzz.sh                 every target, KUBEPULL_FUZZ_SECONDS (default 12) each
#   scripts/fuzz.sh 300 tar hosts   the named targets, 300 s each
#
# cargo-fuzz is installed with `cargo install --locked cargo-fuzz` when missing (once per
# machine, into cargo's bin directory). The sanitizer flags it passes (-Zsanitizer=address) are
# nightly-only; this machine has the stable toolchain, so the build runs with RUSTC_BOOTSTRAP=1,
# which lets stable rustc accept them. The fuzz build has its own target directory so it never
# invalidates the ordinary build: KUBEPULL_FUZZ_TARGET_DIR, else $CARGO_TARGET_DIR/fuzz, else
# ~/.cache/kubepull/fuzz-target, kept across runs and checkouts (the first, cold build of the
# sanitized dependencies takes several minutes; later ones only rebuild what changed). New inputs the fuzzer finds go to a scratch directory, not
# into the checked-in corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

secs=${KUBEPULL_FUZZ_SECONDS:-12}
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  secs=$1
  shift
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (once)"
  cargo install --locked cargo-fuzz
fi

if [[ -n ${KUBEPULL_FUZZ_TARGET_DIR:-} ]]; then
  target_dir=$KUBEPULL_FUZZ_TARGET_DIR
elif [[ -n ${CARGO_TARGET_DIR:-} ]]; then
  target_dir=$CARGO_TARGET_DIR/fuzz
else
  target_dir=${XDG_CACHE_HOME:-$HOME/.cache}/kubepull/fuzz-target
fi
mapfile -t all < <(cargo fuzz list)
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=("${all[@]}")
fi

log "cargo fuzz build (${#all[@]} targets, address sanitizer, debug assertions)"
start=$SECONDS
cargo fuzz build --debug-assertions --codegen-units 16 --target-dir "$target_dir"
echo "built in $((SECONDS - start)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  if [[ ! -d fuzz/corpus/$t ]]; then
    echo "no seed corpus fuzz/corpus/$t" >&2
    failed+=("$t")
    continue
  fi
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  log "fuzz $t for ${secs} s ($(find "fuzz/corpus/$t" -type f | wc -l) seeds)"
  t0=$SECONDS
  # -rss_limit_mb: the machine is shared; -timeout: one input may take at most 10 s
  if cargo fuzz run --debug-assertions --codegen-units 16 --target-dir "$target_dir" "$t" \
    "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$scratch/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$scratch/$t.log" |
      tr '\n' ' '
    echo "($((SECONDS - t0)) s)"
  else
    tail -n 60 "$scratch/$t.log"
    repro=$(grep -oE 'fuzz/artifacts/[^ ]+' "$scratch/$t.log" | tail -n 1 || true)
    echo
    echo "FUZZ TARGET $t FAILED; reproducer: ${repro:-none written (see the log above)}" >&2
    if [[ -n $repro ]]; then
      echo "replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --debug-assertions --codegen-units 16 --target-dir $target_dir $t $repro" >&2
    fi
    failed+=("$t")
  fi
done

if ((${#failed[@]})); then
  echo "fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${secs} s each, no crash"
