#!/usr/bin/env bash
# Benchmark: wall time per invocation of
#   kubepull create secret docker-registry ... --dry-run=client -o yaml
# versus the same `kubectl` command, N runs each (default 200), and the speedup.
#
# Usage: scripts/bench-create-secret.sh [N]
#   N              runs per command (default: $N or 200)
#   KUBEPULL_BIN   use this kubepull binary instead of building target/release/kubepull
#   KUBECTL        kubectl to compare against (default: kubectl on PATH)
#
# Uses hyperfine when it is installed, otherwise a bash loop timed with `date +%s%N`.
# Both commands run with an empty HOME and without KUBECONFIG, in an empty directory.
set -euo pipefail

N="${1:-${N:-200}}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBECTL="${KUBECTL:-$(command -v kubectl || true)}"
if [[ -z "$KUBECTL" || ! -x "$KUBECTL" ]]; then
  echo "bench-create-secret: kubectl not found (set KUBECTL=/path/to/kubectl)" >&2
  exit 2
fi

if [[ -n "${KUBEPULL_BIN:-}" ]]; then
  KUBEPULL="$KUBEPULL_BIN"
else
  echo "building kubepull (release)..." >&2
  (cd "$ROOT" && cargo build --release -p kubepull --quiet)
  KUBEPULL="${CARGO_TARGET_DIR:-$ROOT/target}/release/kubepull"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/cwd"
cd "$WORK/cwd"
unset KUBECONFIG
export HOME="$WORK/home"

ARGS=(create secret docker-registry regcred --docker-server=https://index.docker.io/v1/
  --docker-username=alice --docker-password=s3cret --docker-email=alice@example.com
  --dry-run=client -o yaml)

# Sanity check: both print the same thing.
if ! cmp -s <("$KUBECTL" "${ARGS[@]}" 2>&1) <("$KUBEPULL" "${ARGS[@]}" 2>&1); then
  echo "bench-create-secret: warning: kubectl and kubepull outputs differ" >&2
fi

# Prints the mean wall time in milliseconds of N runs of "$@".
mean_ms_loop() {
  local start end i
  "$@" >/dev/null 2>&1 || true # warm-up
  start=$(date +%s%N)
  for ((i = 0; i < N; i++)); do
    "$@" >/dev/null 2>&1
  done
  end=$(date +%s%N)
  awk -v ns="$((end - start))" -v n="$N" 'BEGIN { printf "%.3f", ns / n / 1e6 }'
}

quote_cmd() {
  local out="" a
  for a in "$@"; do out+="$(printf '%q' "$a") "; done
  printf '%s' "$out"
}

if command -v hyperfine >/dev/null 2>&1; then
  METHOD="hyperfine (--warmup 5 --runs $N -N)"
  hyperfine --warmup 5 --runs "$N" -N --export-json "$WORK/h.json" \
    "$(quote_cmd "$KUBEPULL" "${ARGS[@]}")" "$(quote_cmd "$KUBECTL" "${ARGS[@]}")" >&2
  read -r KP_MS KC_MS < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print("%.3f %.3f" % (r[0]["mean"] * 1e3, r[1]["mean"] * 1e3))' "$WORK/h.json")
else
  METHOD="bash loop, date +%s%N (hyperfine not installed)"
  KP_MS=$(mean_ms_loop "$KUBEPULL" "${ARGS[@]}")
  KC_MS=$(mean_ms_loop "$KUBECTL" "${ARGS[@]}")
fi

SPEEDUP=$(awk -v a="$KC_MS" -v b="$KP_MS" 'BEGIN { printf "%.1f", a / b }')
echo
echo "create secret docker-registry --dry-run=client -o yaml, $N runs each ($METHOD)"
printf '%-10s %16s\n' "command" "mean ms/run"
printf '%-10s %16s\n' "kubepull" "$KP_MS"
printf '%-10s %16s\n' "kubectl" "$KC_MS"
printf '%-10s %15sx\n' "speedup" "$SPEEDUP"
