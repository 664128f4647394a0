"""Create what the control plane expects to find: bucket, tables, upload events."""

from __future__ import annotations

from typing import Any

from chalicelib.records import configure, create_tables
from chalicelib.settings import Settings

UPLOAD_QUEUE = "aether-artifact-uploads"
# A delivery message handed out comes back this long after, unless its consumer finished:
# longer than the consumer's run and an attempt's lease (``hook_delivery``).
HOOKS_VISIBILITY_SECONDS = 120


def aws_client(service: str, settings: Settings, endpoint_url: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name=settings.region,
        endpoint_url=endpoint_url or settings.s3_endpoint_url,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4")
        if service == "s3"
        else None,
    )


def provision_keys(settings: Settings) -> None:
    """The KMS keys config is sealed and fingerprinted with, under the aliases the settings
    name (what Terraform creates on AWS). Safe to run again."""
    kms = aws_client("kms", settings, settings.kms_endpoint_url)
    aliases = {
        alias["AliasName"]
        for page in kms.get_paginator("list_aliases").paginate()
        for alias in page.get("Aliases", [])
    }
    wanted = [
        (settings.config_key_id, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        (settings.config_mac_key_id, "HMAC_256", "GENERATE_VERIFY_MAC"),
    ]
    for alias, spec, usage in wanted:
        if not alias.startswith("alias/") or alias in aliases:
            continue
        key = kms.create_key(
            KeySpec=spec, KeyUsage=usage, Description=f"Aether config ({settings.stage})"
        )
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyMetadata"]["KeyId"])


def provision_storage(settings: Settings) -> None:
    """The tables, the artifact bucket and the config keys. Safe to run again: what exists
    is left as it is."""
    configure(settings)
    create_tables()
    provision_keys(settings)
    s3 = aws_client("s3", settings)
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    if settings.bucket not in existing:
        s3.create_bucket(Bucket=settings.bucket)
    # As the Terraform bucket: every write is a new version, so the version the control
    # plane verified is told apart from any later write, and is never lost to one.
    s3.put_bucket_versioning(Bucket=settings.bucket, VersioningConfiguration={"Status": "Enabled"})
    provision_hooks_queue(settings)


def provision_hooks_queue(settings: Settings) -> str:
    """The queue event hooks are delivered through (as Terraform creates it); its URL."""
    sqs = aws_client("sqs", settings, settings.hooks.sqs_endpoint_url)
    created = sqs.create_queue(
        QueueName=settings.hooks.queue_name,
        Attributes={"VisibilityTimeout": str(HOOKS_VISIBILITY_SECONDS)},
    )
    return str(created["QueueUrl"])


def provision(settings: Settings, queue_name: str = UPLOAD_QUEUE) -> str:
    """Storage and the bucket's ObjectCreated → SQS notification (moto's S3, which notifies
    like AWS); returns the queue URL. Safe to run again."""
    provision_storage(settings)
    s3 = aws_client("s3", settings)
    sqs = aws_client("sqs", settings)
    queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "aether-artifact-uploads",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "artifacts/"}]}},
                }
            ]
        },
    )
    return queue_url
