#!/usr/bin/env bash
# The main job on the embedded stack: deploy examples/hello-express with the CLI,
# fetch it over HTTP, then show `aether list` and `aether logs`. Run by `make demo`
# after `make up`.
set -euo pipefail
cd "$(dirname "$0")/../.."

. .aether/local.env
# The demo's CLI session lives with the stack, not in your own ~/.config and ~/.cache.
export XDG_CONFIG_HOME="$PWD/.aether/demo/config" XDG_CACHE_HOME="$PWD/.aether/demo/cache"
aether=.venv/bin/aether
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "aether login"
printf '%s\n' "$AETHER_TOKEN" | "$aether" login --api-url "$AETHER_API_URL"
unset AETHER_TOKEN  # from here on the CLI uses the session it just saved

step "aether deploy --path examples/hello-express"
"$aether" --log-format text deploy --path examples/hello-express

url=$("$aether" status --app hello-express --format json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["url"])')
step "curl $url"
for _ in $(seq 50); do
  if curl -fsS "$url"; then break; fi
  sleep 0.2
done
echo

step "aether list"
"$aether" list

step "aether logs --app hello-express --tail 20"
sleep 2  # lines settle for two seconds before they are served, so pages never skip one
"$aether" logs --app hello-express --tail 20

step "done: $url is served by the app; 'make down' stops everything"
