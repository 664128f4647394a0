"""What the control plane asks of AWS, read two ways, and what a policy grants.

* ``code_actions``: the source of ``app.py`` and ``chalicelib`` parsed with
  ``ast``. Every boto3 S3 client method and every pynamodb operation that can
  run in the Lambda (reachable by name from ``app.py``) is mapped to its IAM
  actions through the explicit tables below; anything not in a table fails.
* ``recorded_grants``: HTTP requests that reached a moto server while the API
  ran, as its recorder wrote them down. That is what IAM evaluates, including
  presigned URLs (they act with the Lambda role's permissions) and calls the
  libraries make on their own.
"""

from __future__ import annotations

import ast
import base64
import fnmatch
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_SOURCES = [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py"))]

# boto3 S3 client method → the IAM actions S3 checks for it. HeadObject is
# authorised as GetObject; HeadBucket as ListBucket (which also makes a
# missing key answer 404 instead of 403); CopyObject reads the source and
# writes the target.
S3_METHODS: dict[str, frozenset[str]] = {
    "head_bucket": frozenset({"s3:ListBucket"}),
    "list_objects_v2": frozenset({"s3:ListBucket"}),
    "head_object": frozenset({"s3:GetObject"}),
    "get_object": frozenset({"s3:GetObject"}),
    "put_object": frozenset({"s3:PutObject"}),
    "copy_object": frozenset({"s3:GetObject", "s3:PutObject"}),
    "delete_object": frozenset({"s3:DeleteObject"}),
}

# pynamodb operations. Called on the model class (``Artifact.get``) or on an
# index (``Artifact.by_app.query``): ``CLASS_OPERATIONS``; called on an item or
# inside a TransactWrite (``write.save(item)``): ``ITEM_OPERATIONS``.
# TransactWriteItems has no IAM action of its own: each item is authorised as
# PutItem / UpdateItem / DeleteItem / ConditionCheckItem.
CLASS_OPERATIONS: dict[str, str] = {
    "get": "dynamodb:GetItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "count": "dynamodb:Query",
    "exists": "dynamodb:DescribeTable",
    "describe_table": "dynamodb:DescribeTable",
    "batch_get": "dynamodb:BatchGetItem",
    "batch_write": "dynamodb:BatchWriteItem",
    "create_table": "dynamodb:CreateTable",
    "delete_table": "dynamodb:DeleteTable",
}
ITEM_OPERATIONS: dict[str, str] = {
    "save": "dynamodb:PutItem",
    "update": "dynamodb:UpdateItem",  # only with ``actions=``: dict.update has none
    "delete": "dynamodb:DeleteItem",
    "refresh": "dynamodb:GetItem",
    "condition_check": "dynamodb:ConditionCheckItem",
}
# The only AWS clients the Lambda may build itself (DynamoDB goes through pynamodb).
BOTO3_SERVICES = frozenset({"s3", "kms", "sqs", "sns"})

# The hooks' queue and topic: boto3 method → IAM action. Lambda's SQS event source receives
# and deletes the consumer's messages with the function's role (``CONSUMER_ACTIONS``).
SQS_METHODS: dict[str, str] = {
    "get_queue_url": "sqs:GetQueueUrl",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
}
CONSUMER_ACTIONS = frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"})
SNS_METHODS: dict[str, str] = {"publish": "sns:Publish"}

# boto3 KMS client method → its IAM action. Each call names its key by alias (Decrypt too,
# so that only the expected key is ever used); the policy grants by alias.
KMS_METHODS: dict[str, str] = {
    "generate_data_key": "kms:GenerateDataKey",
    "decrypt": "kms:Decrypt",
    "generate_mac": "kms:GenerateMac",
}
# How a policy grants a key by alias: the key ARNs are Terraform's, the aliases are fixed.
KMS_ALIAS_CONDITION = "ForAnyValue:StringEquals"
KMS_ALIAS_KEY = "kms:ResourceAliases"


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str


# -- reading the code --------------------------------------------------------


def code_actions(sources: Iterable[Path] = LAMBDA_SOURCES) -> set[str]:
    """IAM actions of every AWS call the Lambda's code can make."""
    modules = {path: ast.parse(path.read_text(), str(path)) for path in sources}
    models = _model_names()
    live = _live_function_names(modules)
    actions: set[str] = set()
    for path, tree in modules.items():
        uses_records = path.name == "records.py" or any(
            isinstance(node, ast.ImportFrom) and node.module in {"chalicelib.records", "pynamodb"}
            for node in ast.walk(tree)
        )
        for statement in tree.body:
            for node in _walk_live(statement, live):
                actions |= _actions_of(node, models, uses_records, path)
    return actions


def _model_names() -> set[str]:
    from chalicelib.records import TABLES

    return {model.__name__ for model in TABLES.values()}


def _walk_live(node: ast.AST, live: set[str]) -> Iterator[ast.AST]:
    """``node`` and what it contains, except functions that never run in the Lambda."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name not in live:
        return
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _walk_live(child, live)


def _live_function_names(modules: dict[Path, ast.Module]) -> set[str]:
    """Functions referenced, by name, from module-level code or other live functions.

    Names over-approximate calls (two functions may share a name), which can
    only add actions, never hide one. Route handlers are live through their
    decorators.
    """
    functions: dict[str, list[ast.AST]] = {}
    roots: list[ast.AST] = []
    for path, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.setdefault(node.name, []).append(node)
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                if statement.decorator_list and path.name == "app.py":
                    roots.append(statement)
                roots.extend(statement.decorator_list)
            elif isinstance(statement, ast.ClassDef):
                roots.extend(n for n in statement.body if not isinstance(n, ast.FunctionDef))
                # Dunder methods run without being named (``__init__``, ``__post_init__``).
                roots.extend(
                    n
                    for n in statement.body
                    if isinstance(n, ast.FunctionDef) and n.name.startswith("__")
                )
            else:
                roots.append(statement)
    live: set[str] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        for name in _referenced_names(node):
            if name in functions and name not in live:
                live.add(name)
                pending.extend(functions[name])
    return live | {n.name for n in roots if isinstance(n, ast.FunctionDef)}


def _referenced_names(node: ast.AST) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            yield child.id
        elif isinstance(child, ast.Attribute):
            yield child.attr


def _actions_of(node: ast.AST, models: set[str], uses_records: bool, path: Path) -> set[str]:
    # ``Model.op`` whether called now or handed on (``_probe(Model.describe_table)``).
    if (
        isinstance(node, ast.Attribute)
        and _is_model(node.value, models)
        and node.attr in CLASS_OPERATIONS
    ):
        return {CLASS_OPERATIONS[node.attr]}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return set()
    method, receiver = node.func.attr, node.func.value
    if _is_boto3_client(node):
        service = (
            node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        )
        assert service in BOTO3_SERVICES, (
            f"{path.name}:{node.lineno}: the Lambda builds a boto3 {service!r} client; "
            "add its calls to tests/ops/iam.py and the policies"
        )
        return set()
    if _is_kms_client(receiver):
        assert method in KMS_METHODS, f"{path.name}:{node.lineno}: KMS {method} is not mapped"
        return {KMS_METHODS[method]}
    if _is_client(receiver, "_sqs"):
        assert method in SQS_METHODS, f"{path.name}:{node.lineno}: SQS {method} is not mapped"
        return {SQS_METHODS[method]}
    if _is_client(receiver, "_sns"):
        assert method in SNS_METHODS, f"{path.name}:{node.lineno}: SNS {method} is not mapped"
        return {SNS_METHODS[method]}
    if _is_s3_client(receiver):
        if method == "generate_presigned_url":
            first = node.args[0]
            assert isinstance(first, ast.Constant), f"{path.name}:{node.lineno}: presign what?"
            method = str(first.value)
        assert method in S3_METHODS, f"{path.name}:{node.lineno}: S3 {method} is not mapped"
        return set(S3_METHODS[method])
    if not uses_records:
        return set()
    if _is_model(receiver, models) and method in CLASS_OPERATIONS:
        return set()  # counted once, from the Attribute node itself
    if isinstance(receiver, ast.Attribute) and _is_model(receiver.value, models):
        return {CLASS_OPERATIONS[method]} if method in CLASS_OPERATIONS else set()  # an index
    if method in CLASS_OPERATIONS and method not in {"get", "count"}:
        # A model or index handed in as a value (``index.query``, ``model.exists()``);
        # ``get`` and ``count`` are left out as every dict has a ``get``.
        return {CLASS_OPERATIONS[method]}
    if method == "update" and not any(k.arg == "actions" for k in node.keywords):
        return set()
    if method in ITEM_OPERATIONS:
        return {ITEM_OPERATIONS[method]}
    return set()


def _is_model(node: ast.AST, models: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in models


def _is_s3_client(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "_s3") or (
        isinstance(node, ast.Name) and node.id == "s3"
    )


def _is_kms_client(node: ast.AST) -> bool:
    return _is_client(node, "_kms")


def _is_client(node: ast.AST, attribute: str) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == attribute


def _is_boto3_client(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "client"
        and isinstance(func.value, ast.Name)
        and func.value.id == "boto3"
    )


# -- reading a moto recording -------------------------------------------------


def recorded_grants(recording: str) -> list[Grant]:
    """The (action, resource) pairs IAM would evaluate for each recorded request."""
    grants: list[Grant] = []
    for line in recording.splitlines():
        if line.strip():
            grants.extend(_request_grants(json.loads(line)))
    return grants


def _request_grants(entry: dict[str, Any]) -> list[Grant]:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    target = headers.get("x-amz-target", "")
    if target.startswith("DynamoDB_20120810."):
        return _dynamodb_grants(target.split(".", 1)[1], _json_body(entry))
    if target.startswith("TrentService."):
        key = _json_body(entry).get("KeyId")
        assert isinstance(key, str) and key.startswith("alias/"), f"{target} names no alias"
        return [Grant(f"kms:{target.split('.', 1)[1]}", key)]
    if target.startswith("AmazonSQS."):
        body = _json_body(entry)
        queue = body.get("QueueName") or str(body["QueueUrl"]).rsplit("/", 1)[1]
        return [Grant(f"sqs:{_SQS_ACTIONS[target.split('.', 1)[1]]}", queue_arn(queue))]
    url = urlsplit(entry["url"])
    credential = headers.get("authorization", "") + " ".join(
        parse_qs(url.query).get("X-Amz-Credential", [])
    )
    if "/s3/aws4_request" in credential:
        return _s3_grants(entry["method"], url.path, headers)
    if "/sns/aws4_request" in credential:
        form = parse_qs(_raw_body(entry))
        assert form["Action"] == ["Publish"], form["Action"]
        return [Grant("sns:Publish", topic_arn(form["TopicArn"][0].rsplit(":", 1)[1]))]
    raise AssertionError(f"a request to no service the Lambda uses: {entry['method']} {url.path}")


_SQS_ACTIONS = {
    "GetQueueUrl": "GetQueueUrl",
    "SendMessage": "SendMessage",
    "SendMessageBatch": "SendMessage",
}


def queue_arn(queue: str) -> str:
    return f"arn:aws:sqs:*:*:{queue}"


def topic_arn(topic: str) -> str:
    return f"arn:aws:sns:*:*:{topic}"


def _json_body(entry: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(_raw_body(entry) or "{}")
    return decoded


def _raw_body(entry: dict[str, Any]) -> str:
    body = str(entry.get("body") or "")
    return base64.b64decode(body).decode() if entry.get("body_encoded") else body


def table_arn(table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:*:*:table/{table}"
    return arn if index is None else f"{arn}/index/{index}"


def _dynamodb_grants(operation: str, body: dict[str, Any]) -> list[Grant]:
    if operation == "TransactWriteItems":
        return [
            Grant(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table_arn(request["TableName"]))
            for item in body["TransactItems"]
            for kind, request in item.items()
        ]
    if operation in ("BatchWriteItem", "BatchGetItem"):  # keyed by table: each is authorised
        return [Grant(f"dynamodb:{operation}", table_arn(table)) for table in body["RequestItems"]]
    return [Grant(f"dynamodb:{operation}", table_arn(body["TableName"], body.get("IndexName")))]


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _s3_grants(method: str, path: str, headers: dict[str, str]) -> list[Grant]:
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not key:
        assert method in {"HEAD", "GET"}, f"bucket-level {method} {path}"
        return [Grant("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    resource = f"arn:aws:s3:::{bucket}/{key}"
    if method in {"HEAD", "GET"}:
        return [Grant("s3:GetObject", resource)]
    if method == "DELETE":
        return [Grant("s3:DeleteObject", resource)]
    assert method == "PUT", f"object-level {method} {path}"
    grants = [Grant("s3:PutObject", resource)]
    source = headers.get("x-amz-copy-source")
    if source:
        grants.append(Grant("s3:GetObject", f"arn:aws:s3:::{unquote(source).lstrip('/')}"))
    return grants


def by_prefix(grant: Grant) -> Grant:
    """An object grant generalised to its key prefix: ``bucket/artifacts/…`` → ``bucket/artifacts/*``."""
    head, _, rest = grant.resource.partition(":::")
    bucket, _, key = rest.partition("/")
    if not key:
        return grant
    return Grant(grant.action, f"{head}:::{bucket}/{key.split('/', 1)[0]}/*")


# -- reading a policy -----------------------------------------------------------


def policy_grants(policy: dict[str, Any]) -> set[Grant]:
    """Every (action, resource) pair a plain Allow-only policy grants."""
    assert policy["Version"] == "2012-10-17"
    grants: set[Grant] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", statement
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, (
            f"only Sid/Effect/Action/Resource/Condition are expected, got {sorted(statement)}"
        )
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        assert all("*" not in a for a in actions), f"wildcard action in {statement}"
        if "Condition" in statement:
            resources = _kms_aliases(statement, actions, resources)
        grants |= {Grant(a, r) for a in actions for r in resources}
    return grants


def _kms_aliases(statement: dict[str, Any], actions: list[str], resources: list[str]) -> list[str]:
    """The one condition a policy may carry: KMS keys granted by their aliases, which then
    stand for the resources (any key, narrowed to those aliases)."""
    assert all(a.startswith("kms:") for a in actions), f"a condition outside KMS: {statement}"
    assert resources == ["arn:aws:kms:*:*:key/*"], f"KMS by alias names any key: {statement}"
    condition = statement["Condition"]
    assert list(condition) == [KMS_ALIAS_CONDITION], statement
    assert list(condition[KMS_ALIAS_CONDITION]) == [KMS_ALIAS_KEY], statement
    aliases = _as_list(condition[KMS_ALIAS_CONDITION][KMS_ALIAS_KEY])
    assert all(a.startswith("alias/") and "*" not in a for a in aliases), statement
    return aliases


def allows(grants: Iterable[Grant], wanted: Grant) -> bool:
    """IAM's matching: actions case-insensitive, resources with ``*``/``?`` wildcards."""
    return any(
        g.action.lower() == wanted.action.lower()
        and fnmatch.fnmatchcase(wanted.resource, g.resource.replace("[", "[[]"))
        for g in grants
    )


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
