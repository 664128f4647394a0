#!/usr/bin/env bash
# Create (or reuse) the kind cluster "aether", build and load the two images an app pod
# needs, apply infra/k8s/, and write two kubeconfigs under .aether/:
#
#   .aether/kind-kubeconfig        the control plane's identity: the aether-control-plane
#                                  ServiceAccount's token, so every call goes through its Role
#                                  (KUBECONFIG for the control plane, AETHER_KIND_KUBECONFIG
#                                  for pytest -m kind)
#   .aether/kind-admin-kubeconfig  cluster admin, for kubectl and the tests' fixtures
#
# Environment: AETHER_KIND_CLUSTER (aether), AETHER_NODE_MAJORS (the Node lines in support
# today, from chalicelib/contract.py; e.g. "22 24 26"),
# AETHER_TOKEN_DURATION (24h, the control plane token's lifetime; run again to renew).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster="${AETHER_KIND_CLUSTER:-aether}"
supported_majors() {
  (cd "$root" && python3 -c 'from chalicelib.contract import supported_runtimes
print(" ".join(runtime.removeprefix("node") for runtime in supported_runtimes()))')
}
node_majors="${AETHER_NODE_MAJORS:-$(supported_majors)}"
token_duration="${AETHER_TOKEN_DURATION:-24h}"
namespace="aether-apps"
service_account="aether-control-plane"
out="$root/.aether"
admin_kubeconfig="$out/kind-admin-kubeconfig"
kubeconfig="$out/kind-kubeconfig"

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "up.sh: $1 is required and was not found on PATH" >&2
    exit 1
  fi
}
need docker
need kind
need kubectl

umask 077
mkdir -p "$out"

# No pipe into grep -q: under pipefail an early exit of grep could fail the pipeline.
clusters="$(kind get clusters 2>/dev/null)"
if grep -qx "$cluster" <<<"$clusters"; then
  echo "up.sh: reusing kind cluster $cluster"
  kind get kubeconfig --name "$cluster" >"$admin_kubeconfig"
else
  kind create cluster --name "$cluster" --config "$root/infra/kind/cluster.yaml" \
    --kubeconfig "$admin_kubeconfig" --wait 180s
fi

images=("aether-fetcher:1")
docker build -t "aether-fetcher:1" "$root/infra/images/fetcher"
for major in $node_majors; do
  docker build --build-arg "NODE_MAJOR=$major" -t "aether-nodejs:$major-slim" \
    "$root/infra/images/nodejs"
  images+=("aether-nodejs:$major-slim")
done
kind load docker-image --name "$cluster" "${images[@]}"

kubectl_admin=(kubectl --kubeconfig "$admin_kubeconfig")
# The namespace first: the ServiceAccount, Role and RoleBinding live in it.
"${kubectl_admin[@]}" apply -f "$root/infra/k8s/namespace.yaml"
"${kubectl_admin[@]}" apply -f "$root/infra/k8s/rbac.yaml"

server="$("${kubectl_admin[@]}" config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca_data="$("${kubectl_admin[@]}" config view --raw --minify \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
token="$("${kubectl_admin[@]}" -n "$namespace" create token "$service_account" \
  --duration "$token_duration")"

cat >"$kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: kind-$cluster
  cluster:
    server: $server
    certificate-authority-data: $ca_data
users:
- name: $service_account
  user:
    token: $token
contexts:
- name: aether-kind
  context:
    cluster: kind-$cluster
    user: $service_account
    namespace: $namespace
current-context: aether-kind
KUBECONFIG

# Prove the identity works, and only as far as the Role says.
KUBECONFIG="$kubeconfig" kubectl auth can-i patch deployments.apps -n "$namespace" >/dev/null
# Release commands and runs are Jobs, created and (a stopped run) deleted.
KUBECONFIG="$kubeconfig" kubectl auth can-i create jobs.batch -n "$namespace" >/dev/null
KUBECONFIG="$kubeconfig" kubectl auth can-i delete jobs.batch -n "$namespace" >/dev/null
if KUBECONFIG="$kubeconfig" kubectl auth can-i get secrets -n "$namespace" >/dev/null 2>&1; then
  echo "up.sh: the control plane can read secrets; infra/k8s/rbac.yaml grants too much" >&2
  exit 1
fi

cat <<DONE
kind cluster "$cluster" is ready; images loaded: ${images[*]}
  export KUBECONFIG=$kubeconfig                      # the control plane
  export AETHER_KIND_KUBECONFIG=$kubeconfig          # pytest -m kind tests/kube
  export AETHER_KIND_ADMIN_KUBECONFIG=$admin_kubeconfig
DONE
