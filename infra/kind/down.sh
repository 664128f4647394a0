#!/usr/bin/env bash
# Delete the kind cluster up.sh created and the kubeconfigs it wrote.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster="${AETHER_KIND_CLUSTER:-aether}"

if ! command -v kind >/dev/null 2>&1; then
  echo "down.sh: kind is required and was not found on PATH" >&2
  exit 1
fi
# No pipe into grep -q: under pipefail an early exit of grep could fail the pipeline.
clusters="$(kind get clusters 2>/dev/null)"
if grep -qx "$cluster" <<<"$clusters"; then
  kind delete cluster --name "$cluster"
else
  echo "down.sh: no kind cluster named $cluster"
fi
rm -f "$root/.aether/kind-kubeconfig" "$root/.aether/kind-admin-kubeconfig"
