"""``aether deploy``: build here, upload once, deploy, follow the rollout.

Steps (issue 4): detect the Node.js project; install production dependencies
(skipped when unchanged); pack a deterministic app.tar.gz with digest, manifest
and SBOM; sign the digest when AETHER_SIGNING_KEY is set; skip the upload when
the platform already has the digest; otherwise upload through a presigned URL;
create the deployment and follow its events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from aether_cli.commands.apps import app_option, wait_options
from aether_cli.output import Output, format_option

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _parse_env(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise click.BadParameter(
                f"{item!r} is not KEY=VALUE with KEY like [A-Za-z_][A-Za-z0-9_]*"
            )
        env[key] = value
    return env


@dataclass(frozen=True)
class DeployRequest:
    project_dir: Path
    app: str | None
    dry_run: bool
    pack_only: bool
    sbom: bool
    env: dict[str, str]
    start_command: str | None
    wait: bool
    timeout: float


@click.command()
@app_option("App name. Default: config default_app, then package.json's name.")
@click.option(
    "--path",
    "project_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Project directory (holds package.json).",
)
@click.option("--dry-run", is_flag=True, help="Install, pack and sign; send nothing.")
@click.option("--pack-only", is_flag=True, help="Stop after packing (no app or login needed).")
@click.option("--no-sbom", is_flag=True, help="Skip the CycloneDX SBOM.")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_env,
    help="Environment variable for the service; repeatable.",
)
@click.option(
    "--start-command", metavar="CMD", help="Command that starts the service. Default: npm start."
)
@wait_options("deployment")
@format_option()
@click.pass_obj
def deploy(
    out: Output,
    app: str | None,
    project_dir: Path,
    dry_run: bool,
    pack_only: bool,
    no_sbom: bool,
    env: dict[str, str],
    start_command: str | None,
    no_wait: bool,
    timeout: float,
    fmt: str,
) -> None:
    """Package this Node.js project and deploy it.

    With --format json, stdout is one JSON object: artifact, digest,
    size_bytes, manifest, sbom, signature, uploaded, deployment_id, status
    (and url when known); on failure {"error": {"code", "message"}}.
    """
    request = DeployRequest(
        project_dir=project_dir,
        app=app,
        dry_run=dry_run,
        pack_only=pack_only,
        sbom=not no_sbom,
        env=env,
        start_command=start_command,
        wait=not no_wait,
        timeout=timeout,
    )
    summary = run_deploy(request)
    out.result(summary, lambda: _render(out, summary))


def run_deploy(request: DeployRequest) -> dict[str, Any]:
    """The eight steps; returns the result object (the JSON output)."""
    from aether_cli import config
    from aether_cli.log import get_logger
    from aether_cli.signing import load_signing_key, sign_digest, write_signature

    log = get_logger()
    settings = config.load_settings()
    root = request.project_dir.resolve()
    remote = not (request.pack_only or request.dry_run)

    # Everything that can be wrong in the configuration fails before the slow part.
    credentials = config.require_credentials(settings) if remote else None
    signing_key = load_signing_key(settings.signing_key) if settings.signing_key else None

    from aether_cli.pack import pack_project
    from aether_cli.project import detect_project, install_production_dependencies

    project = detect_project(root, start_command=request.start_command)
    app = None if request.pack_only else config.app_name_from(request.app, settings, project.name)
    log.info(
        "Node.js %s project %s (%s)",
        project.node_major,
        project.name or root.name,
        project.node_major_source,
    )
    install_production_dependencies(project, log=engine_log)
    packed = pack_project(project, root / ".aether" / "build", sbom=request.sbom, log=engine_log)
    log.debug(
        "packed %s files into %s (%s bytes), sha256 %s",
        packed.file_count,
        packed.artifact,
        f"{packed.size_bytes:,}",
        packed.digest,
    )

    signature_path = packed.artifact.with_name(packed.artifact.name + ".sig")
    signature_hex = None
    if signing_key is not None:
        signature_hex = sign_digest(signing_key, packed.digest)
        write_signature(signature_path, signature_hex)
        log.info("signed the digest: %s", signature_path)
    else:
        # A signature left from an earlier pack would describe other bytes.
        signature_path.unlink(missing_ok=True)

    runtime = f"node{project.node_major}"
    summary: dict[str, Any] = {
        "artifact": str(packed.artifact),
        "digest": packed.digest,
        "size_bytes": packed.size_bytes,
        "manifest": str(packed.manifest),
        "sbom": str(packed.sbom) if packed.sbom else None,
        "signature": str(signature_path) if signature_hex else None,
        "file_count": packed.file_count,
        "app": app,
        "runtime": runtime,
        "uploaded": False,
        "deployment_id": None,
        "status": None,
    }
    if credentials is None:
        if request.dry_run:
            summary["status"] = "dry_run"
            if settings.api_url is None or settings.token is None:
                log.warning("not logged in: a real deploy would stop here; run `aether login`")
        else:
            summary["status"] = "packed"
        return summary

    from aether_cli.artifacts import ensure_uploaded
    from aether_cli.client import ApiClient
    from aether_cli.errors import ApiError
    from aether_cli.output import Output
    from aether_cli.rollout import follow, log_event

    assert app is not None
    api_url, token = credentials
    client = ApiClient(api_url, token)
    output = click.get_current_context().find_object(Output) or Output()
    summary["uploaded"] = ensure_uploaded(
        client,
        output,
        app=app,
        artifact=packed.artifact,
        digest=packed.digest,
        size_bytes=packed.size_bytes,
        runtime=runtime,
        signature_hex=signature_hex,
    )
    try:
        deployment = client.create_deployment(
            app=app,
            digest=packed.digest,
            runtime=runtime,
            start_command=project.start_command,
            env=request.env,
        )
    except ApiError as exc:
        if exc.code == "artifact_not_verified":
            exc.message = _rejection(client, packed.digest, exc.message)
        raise
    log.info("deployment %s: %s", deployment.get("deployment_id"), deployment.get("status"))
    if request.wait:
        deployment = follow(client, deployment, timeout=request.timeout, on_event=log_event)
    summary["deployment_id"] = deployment.get("deployment_id")
    summary["status"] = deployment.get("status")
    if deployment.get("url"):
        summary["url"] = deployment["url"]
    return summary


def engine_log(message: str) -> None:
    """The packing engine speaks in lines; its "warning: ..." ones are warnings."""
    from aether_cli.log import get_logger

    log = get_logger()
    if message.startswith("warning: "):
        log.warning(message.removeprefix("warning: "))
    else:
        log.info(message)


def _rejection(client: Any, digest: str, fallback: str) -> str:
    """Why the platform refused the artifact, from its record when it says."""
    from aether_cli.errors import AetherError

    try:
        record = client.get_artifact(digest)
    except AetherError:
        return fallback
    reason = record.get("reason") or record.get("status")
    return f"the platform rejected artifact {digest[:12]}: {reason}" if reason else fallback


def _render(out: Output, summary: dict[str, Any]) -> None:
    status = summary["status"]
    if status in ("packed", "dry_run"):
        verb = "Packed" if status == "packed" else "Dry run: packed"
        out.line(f"{verb} {summary['artifact']}")
        out.line(f"  digest    {summary['digest']}")
        out.line(f"  size      {summary['size_bytes']:,} bytes, {summary['file_count']} files")
        if summary.get("app"):
            out.line(f"  app       {summary['app']} (nothing was sent)")
        return
    out.line(f"Deployed {summary['app']}: {status}")
    out.line(f"  deployment  {summary['deployment_id']}")
    out.line(
        f"  digest      {summary['digest']}"
        + ("" if summary["uploaded"] else " (already uploaded)")
    )
    if summary.get("url"):
        out.line(f"  url         {summary['url']}")
