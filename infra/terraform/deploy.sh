#!/usr/bin/env bash
# Deploy one stage of Aether to AWS: bucket, tables, log groups and the Chalice
# app (packaged by `chalice package` as the Terraform module ./chalice).
#
#   infra/terraform/deploy.sh prod            # plan and apply, asks for confirmation
#   infra/terraform/deploy.sh prod -auto-approve
#
# Needs Terraform >= 1.3, AWS credentials in the environment, and the
# repository's .venv. Each stage has its own Terraform workspace, so stages
# never share state.
set -euo pipefail

stage="${1:?usage: deploy.sh <stage> [terraform apply options]}"
shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
vars="stages/$stage.tfvars.json"
[ -f "$here/$vars" ] || { echo "no $here/$vars: create it first" >&2; exit 2; }

rm -rf "$here/chalice"
(cd "$root" && .venv/bin/chalice package --stage "$stage" --pkg-format terraform "$here/chalice")
# Lift chalice's Terraform cap and merge what only Terraform knows into the functions' environment.
"$root/.venv/bin/python" "$here/chalice_module.py" "$here/chalice/chalice.tf.json"

terraform -chdir="$here" init -input=false
terraform -chdir="$here" workspace select "$stage" 2>/dev/null \
  || terraform -chdir="$here" workspace new "$stage"
terraform -chdir="$here" apply -var-file="$vars" "$@"
terraform -chdir="$here" output -raw api_url
