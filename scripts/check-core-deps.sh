#!/usr/bin/env bash
# kubepull-core must stay a pure rules engine: no async runtime, HTTP client, TLS stack or
# Kubernetes client may appear among its normal (non-dev) dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
BANNED='^(tokio|async-std|smol|futures|futures-util|mio|hyper|hyper-util|reqwest|ureq|h2|http|tower|axum|rustls|native-tls|openssl|kube|kube-client|kube-core|kube-runtime|k8s-openapi)$'
deps=$(cargo tree -p kubepull-core -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u)
bad=$(grep -E "$BANNED" <<<"$deps" || true)
if [[ -n "$bad" ]]; then
  echo "kubepull-core depends on forbidden crates:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "kubepull-core dependencies are pure ($(wc -l <<<"$deps") crates)"
