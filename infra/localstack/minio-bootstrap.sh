#!/bin/sh
# Profile B one-shot: the artifact bucket on MinIO and its ObjectCreated webhook
# (target AETHER, configured by MINIO_NOTIFY_WEBHOOK_*_AETHER on the minio service).
set -eu

mc alias set aether http://127.0.0.1:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "aether/$AETHER_BUCKET"
mc version enable "aether/$AETHER_BUCKET"
mc event add --ignore-existing "aether/$AETHER_BUCKET" arn:minio:sqs::AETHER:webhook \
  --event put --prefix artifacts/
mc event ls "aether/$AETHER_BUCKET"
