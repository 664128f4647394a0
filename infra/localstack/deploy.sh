#!/usr/bin/env bash
# Profile A in one command: LocalStack up (tables and bucket bootstrapped by its ready
# hook), the Chalice app deployed into LocalStack's Lambda and API Gateway with the S3 ->
# Lambda notification, an admin token issued. Writes .aether/localstack.env (0600):
#
#   infra/localstack/deploy.sh && source .aether/localstack.env && aether list
#
# Needs docker (compose v2), the repository's .venv, and PyPI plus the image registries
# the first time (chalice packages Lambda wheels; LocalStack pulls the python3.11 runtime).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
command -v docker >/dev/null 2>&1 || { echo "deploy.sh: docker is required" >&2; exit 1; }

docker compose -f localstack-compose.yml up -d --wait localstack

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:4566
export AETHER_STAGE=localstack
.venv/bin/chalice deploy --stage localstack

mkdir -p .aether
.venv/bin/python - <<'PY'
import json
import os
from pathlib import Path

from chalicelib import auth
from chalicelib.records import configure
from chalicelib.settings import Settings

configure(Settings.from_env())
deployed = json.loads(Path(".chalice/deployed/localstack.json").read_text())
api = next(r for r in deployed["resources"] if r["resource_type"] == "rest_api")
# Path-style URL: works without resolving *.execute-api.localhost.localstack.cloud.
url = f"http://127.0.0.1:4566/restapis/{api['rest_api_id']}/api/_user_request_"
token = auth.issue_token("localstack-admin", "admin").secret
path = Path(".aether/localstack.env")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as env:
    env.write(f"export AETHER_API_URL={url}\nexport AETHER_TOKEN={token}\n")
print(f"aether on LocalStack: {url}  (source {path})")
PY
