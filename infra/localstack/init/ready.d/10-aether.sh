#!/bin/bash
# LocalStack ready hook: the tables of every stage in AETHER_BOOTSTRAP_STAGES and the
# `localstack` stage's artifact bucket. Table definitions are ../tables/*.json, checked
# against the pynamodb models by tests/ops/test_compose.py. Safe to run again.
# The S3 -> Lambda notification and the hooks' SQS -> Lambda mapping are wired by
# `chalice deploy --stage localstack`; the hooks' queue must exist first.
set -euo pipefail

for stage in ${AETHER_BOOTSTRAP_STAGES:-localstack}; do
  for definition in /etc/aether/tables/*.json; do
    table="aether-${stage}-$(basename "$definition" .json)"
    if ! awslocal dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
      awslocal dynamodb create-table --table-name "$table" \
        --cli-input-json "file://${definition}" >/dev/null
      echo "aether: created table $table"
    fi
  done
  awslocal sqs create-queue --queue-name "aether-${stage}-hooks" \
    --attributes VisibilityTimeout=120 >/dev/null
done

bucket="aether-localstack-artifacts"
if ! awslocal s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  awslocal s3api create-bucket --bucket "$bucket" >/dev/null
  awslocal s3api put-bucket-versioning --bucket "$bucket" \
    --versioning-configuration Status=Enabled
  echo "aether: created bucket $bucket"
fi
