#!/usr/bin/env bash
# The main job on the embedded stack: deploy examples/hello-express with the CLI,
# fetch it over HTTP, then show `aether list` and `aether logs`. Run by `make demo`
# after `make up`, with the same environment (AETHER_STATE_DIR and the ports).
set -euo pipefail
cd "$(dirname "$0")/../.."

state="${AETHER_STATE_DIR:-.aether}"
if [ ! -f "$state/local.env" ]; then
  echo "demo: $state/local.env is missing; start the stack first: make up" >&2
  exit 1
fi
. "$state/local.env"
# The demo's CLI session lives with the stack, not in your own ~/.config and ~/.cache.
state=$(cd "$state" && pwd)
export XDG_CONFIG_HOME="$state/demo/config" XDG_CACHE_HOME="$state/demo/cache"
aether=.venv/bin/aether
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
  step() { printf '\n==> %s\n' "$*"; }
fi

step "aether login"
printf '%s\n' "$AETHER_TOKEN" | "$aether" login --api-url "$AETHER_API_URL"
unset AETHER_TOKEN  # from here on the CLI uses the session it just saved

step "aether deploy --path examples/hello-express"
"$aether" deploy --path examples/hello-express

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
