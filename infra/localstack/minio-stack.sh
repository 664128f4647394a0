#!/usr/bin/env bash
# Profile B: artifacts on MinIO, records on LocalStack's DynamoDB, the control plane as
# `chalice local` on the host, and the relay receiving MinIO's webhook on 127.0.0.1.
#
#   infra/localstack/minio-stack.sh up     # then: source .aether/minio.env
#   infra/localstack/minio-stack.sh down
#
# Ports (127.0.0.1): LocalStack 4566, MinIO 9000 (console 9001), API 8000
# (AETHER_API_PORT), webhook 8001 (AETHER_WEBHOOK_PORT). Linux, or Docker Desktop with
# host networking enabled (MinIO must reach the relay on the host's loopback).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
state="$root/.aether"
api_port="${AETHER_API_PORT:-8000}"
webhook_port="${AETHER_WEBHOOK_PORT:-8001}"
compose=(docker compose -f localstack-compose.yml --profile minio)

secret() {  # a 0600 file holding a random secret, created once
  if [ ! -s "$1" ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$1")
  fi
}

stop() {
  for name in minio-api minio-relay; do
    if [ -f "$state/pids/$name.pid" ]; then
      kill -- "-$(cat "$state/pids/$name.pid")" 2>/dev/null || true
      rm -f "$state/pids/$name.pid"
    fi
  done
}

case "${1:-}" in
  up)
    mkdir -p "$state/pids" "$state/logs"
    secret "$state/webhook-token"
    secret "$state/minio-admin-token"
    export AETHER_WEBHOOK_TOKEN AETHER_WEBHOOK_PORT="$webhook_port"
    AETHER_WEBHOOK_TOKEN="$(cat "$state/webhook-token")"
    "${compose[@]}" up -d --wait localstack minio
    "${compose[@]}" run --rm minio-bootstrap

    export AWS_ACCESS_KEY_ID="${AETHER_MINIO_USER:-aether-local}"
    export AWS_SECRET_ACCESS_KEY="${AETHER_MINIO_PASSWORD:-aether-local-secret}"
    export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
    export AWS_ENDPOINT_URL=http://127.0.0.1:4566
    export AETHER_S3_ENDPOINT_URL=http://127.0.0.1:9000
    export AETHER_DYNAMODB_ENDPOINT_URL=http://127.0.0.1:4566
    export AETHER_STAGE=local AETHER_BUCKET=aether-local-artifacts
    AETHER_API_TOKENS="$(cat "$state/minio-admin-token")"
    export AETHER_API_TOKENS
    # The relay insists on a queue to poll; MinIO's events come through the webhook.
    queue_url="$(.venv/bin/python -c 'import boto3; print(boto3.client("sqs").create_queue(QueueName="aether-artifact-uploads")["QueueUrl"])')"

    stop
    setsid .venv/bin/python -m infra.local.api --host 127.0.0.1 --port "$api_port" --stage local \
      >>"$state/logs/minio-api.log" 2>&1 &
    echo $! >"$state/pids/minio-api.pid"
    setsid .venv/bin/python -m infra.local.relay --queue-url "$queue_url" \
      --webhook-port "$webhook_port" --webhook-token-file "$state/webhook-token" \
      >>"$state/logs/minio-relay.log" 2>&1 &
    echo $! >"$state/pids/minio-relay.pid"

    (umask 077 && cat >"$state/minio.env" <<ENV
export AETHER_API_URL=http://127.0.0.1:$api_port
export AETHER_TOKEN=$AETHER_API_TOKENS
ENV
    )
    echo "aether with MinIO: API http://127.0.0.1:$api_port  (source .aether/minio.env)"
    ;;
  down)
    stop
    "${compose[@]}" down
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
