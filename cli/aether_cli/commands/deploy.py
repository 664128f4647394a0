"""``aether deploy``: build here, upload what the platform lacks, release, follow the rollout.

Three stages, each its own function: :func:`build_artifact` (detect the project,
install, build, keep the production closure, pack its dependencies and its own files
as two layers and a manifest naming them, SBOM, sign the manifest), :func:`publish`
(upload, through presigned URLs, only the layers the platform lacks, then the
manifest) and :func:`release` (create the deployment, follow its events).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aether_cli.assignments import parse_assignments
from aether_cli.commands.apps import app_option, checked_app_name, wait_options
from aether_cli.contract import DEFAULT_PLATFORM, PLATFORMS
from aether_cli.output import Output, format_option

if TYPE_CHECKING:
    from aether_cli.artifacts import Published
    from aether_cli.build import BuildResult, NodeRuntime
    from aether_cli.client import ApiClient
    from aether_cli.config import Settings
    from aether_cli.layers import LayeredArtifact
    from aether_cli.project import NodeProject

BUILD_DIR = "build"  # under .aether/: the layers, the manifests, SBOM and signature


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
    build: bool = True
    build_command: str | None = None
    platform: str = DEFAULT_PLATFORM
    clean: bool = False
    release_command: str | None = None
    # --preview: deploy to this preview of the app instead, living ttl_seconds.
    preview: str | None = None
    ttl_seconds: int = 24 * 3600


def _release_command_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    from aether_cli.contract import MAX_COMMAND_LENGTH

    if value is not None and ("\0" in value or len(value) > MAX_COMMAND_LENGTH):
        raise click.BadParameter(f"at most {MAX_COMMAND_LENGTH} characters, without NUL")
    return value


@click.command()
@app_option("App name. Default: aether.toml's app, config default_app, then package.json's name.")
@click.option(
    "--path",
    "project_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Project directory (holds package.json); a workspace package works too.",
)
@click.option("--dry-run", is_flag=True, help="Build, pack and sign; send nothing.")
@click.option("--pack-only", is_flag=True, help="Stop after packing (no app or login needed).")
@click.option("--no-sbom", is_flag=True, help="Skip the CycloneDX SBOM.")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    callback=parse_assignments,
    help="Environment variable for the service; repeatable.",
)
@click.option(
    "--start-command", metavar="CMD", help="Command that starts the service. Default: npm start."
)
@click.option(
    "--release-command",
    metavar="CMD",
    callback=_release_command_option,
    help="Run once per release, before its rollout (migrations); its failure fails the "
    'release. Default: aether.toml\'s [deploy] release_command; "" for none.',
)
@click.option(
    "--build-command", metavar="CMD", help="Build command. Default: the build script, if any."
)
@click.option("--no-build", is_flag=True, help="Skip the build step.")
@click.option(
    "--clean", is_flag=True, help="Install and build from scratch (forget .aether/staging)."
)
@click.option(
    "--platform",
    type=click.Choice(PLATFORMS),
    default=DEFAULT_PLATFORM,
    show_default=True,
    help="Where the artifact runs: dependencies and native addons are for it.",
)
@click.option(
    "--preview",
    metavar="NAME",
    callback=checked_app_name,
    help="Deploy to the preview NAME of --app (created with its config, or kept) instead.",
)
@click.option(
    "--ttl",
    metavar="DURATION",
    callback=lambda _c, _p, v: _ttl_seconds(v),
    help="How long the preview lives: 30s, 15m, 24h, 7d.  [default: 24h]",
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
    release_command: str | None,
    build_command: str | None,
    no_build: bool,
    clean: bool,
    platform: str,
    preview: str | None,
    ttl: int | None,
    no_wait: bool,
    timeout: float,
    fmt: str,
) -> None:
    """Build this Node.js project on this machine and deploy it.

    Installs every dependency from the lockfile with the project's package manager
    in .aether/staging (your own node_modules is never touched), runs the build,
    packs the build output with the production dependencies, and deploys it.

    With --format json, stdout is one JSON object: artifact, digest, size_bytes,
    manifest, sbom, signature, platform, runtime, layers (role, digest, size, path,
    uploaded), uploaded, uploaded_bytes, deployment_id, status (and url when known);
    on failure {"error": {"code", "message"}}.
    """
    if ttl is not None and preview is None:
        raise click.BadParameter(
            "--ttl is a preview's lifetime: give --preview NAME", param_hint="'--ttl'"
        )
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
        build=not no_build,
        build_command=build_command,
        platform=platform,
        clean=clean,
        release_command=release_command,
        preview=preview,
        ttl_seconds=DeployRequest.ttl_seconds if ttl is None else ttl,
    )
    summary = run_deploy(request)
    out.result(summary, lambda: _render(out, summary))


def run_deploy(request: DeployRequest) -> dict[str, Any]:
    """Build, publish and release; returns the result object (the JSON output)."""
    from aether_cli import config
    from aether_cli.log import get_logger

    log = get_logger()
    settings = config.load_settings()
    remote = not (request.pack_only or request.dry_run)

    # Everything that can be wrong fails before the slow part: the configuration,
    # the project, then the token (one cheap call, not after a two-minute build).
    credentials = config.require_credentials(settings) if remote else None

    from aether_cli.project import detect_project

    project = detect_project(
        request.project_dir,
        start_command=request.start_command,
        build_command=request.build_command,
        build=request.build,
    )
    app = None
    if not request.pack_only:
        app = config.app_name_from(request.app or project.settings.app, settings, project.name)
    client = None
    if credentials is not None:
        from aether_cli.client import connect

        client = connect(settings)
        client.whoami()
    preview = None
    if client is not None and request.preview is not None:
        assert app is not None
        # Before the build, which packs for the preview's name: a base that cannot have a
        # preview fails in a second, not after the build.
        preview = client.put_preview(request.preview, base=app, ttl_seconds=request.ttl_seconds)
        app = request.preview
    log.info(
        "Node.js %s project %s (%s, %s)",
        project.node_major,
        project.name or project.root.name,
        f"Node {project.node_major} from {project.node_major_source}",
        project.manager.label,
    )
    built, packed, sbom_path, signature = build_artifact(project, request, settings, app)
    summary: dict[str, Any] = {
        "artifact": str(packed.manifest),
        "digest": packed.digest,
        "size_bytes": packed.size_bytes,
        "manifest": str(packed.describe),
        "sbom": str(sbom_path) if sbom_path else None,
        "signature": str(signature[0]) if signature else None,
        "file_count": packed.file_count,
        "app": app,
        "platform": built.platform,
        "runtime": f"node{project.node_major}",
        "start_command": built.start_command,
        "layers": [
            {
                "role": role,
                "digest": layer.digest,
                "size": layer.size_bytes,
                "path": str(layer.artifact),
                "uploaded": False,
            }
            for role, layer in packed.layers
        ],
        "uploaded": False,
        "uploaded_bytes": 0,
        "deployment_id": None,
        "status": None,
        "preview": None
        if preview is None
        else {"base": preview.get("preview_of"), "expires_at": preview.get("expires_at")},
    }
    if client is None:
        if request.dry_run:
            summary["status"] = "dry_run"
            if settings.api_url is None or settings.token is None:
                log.warning("not logged in: a real deploy would stop here; run `aether login`")
        else:
            summary["status"] = "packed"
        return summary
    assert app is not None
    published = publish(
        client,
        app=app,
        packed=packed,
        built=built,
        signature_hex=signature[1] if signature else None,
    )
    summary["layers"] = [layer.to_json() for layer in published.layers]
    summary["uploaded"] = published.uploaded
    summary["uploaded_bytes"] = published.uploaded_bytes
    deployment = release(client, request, project, built, app=app, digest=packed.digest)
    summary["deployment_id"] = deployment.get("deployment_id")
    summary["status"] = deployment.get("status")
    if deployment.get("url"):
        summary["url"] = deployment["url"]
    return summary


def build_artifact(
    project: NodeProject, request: DeployRequest, settings: Settings, app: str | None = None
) -> tuple[BuildResult, LayeredArtifact, Path | None, tuple[Path, str] | None]:
    """Build and pack for ``app`` (None: no app yet, as --pack-only); the SBOM path and
    (signature file, hex) when there is one."""
    from aether_cli.build import Reporter, build_project
    from aether_cli.layers import pack_layers
    from aether_cli.log import get_logger
    from aether_cli.output import Output
    from aether_cli.signing import load_signing_key, sign_digest, write_signature

    log = get_logger()
    signing_key = load_signing_key(settings.signing_key) if settings.signing_key else None
    work_dir = project.root / ".aether"
    out = click.get_current_context().find_object(Output) or Output()
    report = Reporter(log=engine_log, detail=log.debug, step=out.step)
    built = build_project(
        project,
        work_dir=work_dir,
        node=_node_runtime(project.node_major),
        platform=request.platform,
        cache_dir=_cache_dir(),
        report=report,
        fresh=request.clean,
    )
    with out.step("packing the artifact"):
        packed = pack_layers(
            built.entries, work_dir / BUILD_DIR, app=app, describe=built.describe(), log=engine_log
        )
    log.debug(
        "packed %s files into %s (%s bytes in %s layers), sha256 %s",
        packed.file_count,
        packed.manifest,
        f"{packed.size_bytes:,}",
        len(packed.layers),
        packed.digest,
    )
    sbom_path = None
    if request.sbom:
        from aether_cli.sbom import write_sbom

        sbom_path = write_sbom(built, packed.digest, work_dir / BUILD_DIR / "sbom.json")
    # Single-archive packs of earlier versions: they describe other bytes now.
    for stale in ("app.tar.gz", "app.tar.gz.sig", "pack-stamp.json"):
        (work_dir / BUILD_DIR / stale).unlink(missing_ok=True)
    signature_path = packed.manifest.with_name(packed.manifest.name + ".sig")
    if signing_key is None:
        # A signature left from an earlier pack would describe other bytes.
        signature_path.unlink(missing_ok=True)
        return built, packed, sbom_path, None
    signature_hex = sign_digest(signing_key, packed.digest)
    write_signature(signature_path, signature_hex)
    log.info("signed the digest: %s", signature_path)
    return built, packed, sbom_path, (signature_path, signature_hex)


def _node_runtime(major: int) -> NodeRuntime:
    """A Node of the target major for the build: the one on PATH when it is that major,
    else one installed once from the npm registry."""
    from aether_cli.build import NodeRuntime
    from aether_cli.nodejs import ensure_node

    node = ensure_node(major, log=engine_log)
    headers = node.root if node.include_dir is not None else None
    return NodeRuntime(version=node.version, bin_dir=node.bin_dir, headers=headers)


def _cache_dir() -> Path:
    import os

    from aether_cli.session import cache_root

    return cache_root(os.environ)


def publish(
    client: ApiClient,
    *,
    app: str,
    packed: LayeredArtifact,
    built: BuildResult,
    signature_hex: str | None,
) -> Published:
    """Make the platform hold the artifact, sending only the layers it lacks."""
    from aether_cli.artifacts import ensure_layered_uploaded
    from aether_cli.output import Output

    output = click.get_current_context().find_object(Output) or Output()
    return ensure_layered_uploaded(
        client,
        output,
        app=app,
        artifact=packed,
        runtime=f"node{built.project.node_major}",
        platform=built.platform,
        signature_hex=signature_hex,
    )


def release(
    client: ApiClient,
    request: DeployRequest,
    project: NodeProject,
    built: BuildResult,
    *,
    app: str,
    digest: str,
) -> dict[str, Any]:
    """Create the deployment and, unless --no-wait, follow it to its end."""
    from aether_cli.errors import ApiError
    from aether_cli.log import get_logger
    from aether_cli.output import Output
    from aether_cli.rollout import follow

    settings = project.settings
    # --env and --start-command are set for this and later releases; aether.toml and what
    # the project's package.json implies are defaults, for what was never set.
    # (The artifact's own form of the command: in a workspace it runs in the package's dir.)
    asked = built.start_command if request.start_command else None
    defaults: dict[str, Any] = {} if asked else {"start_command": built.start_command}
    if settings.env:
        defaults["env"] = dict(settings.env)
    if settings.replicas is not None:
        defaults["replicas"] = settings.replicas
    if settings.release_command is not None:
        defaults["release_command"] = settings.release_command
    try:
        deployment = client.create_deployment(
            app=app,
            digest=digest,
            runtime=f"node{project.node_major}",
            env=request.env,
            start_command=asked,
            release_command=request.release_command,
            defaults=defaults,
        )
    except ApiError as exc:
        if exc.code == "artifact_not_verified":
            exc.message = _rejection(client, digest, exc.message)
        raise
    get_logger().info(
        "deployment %s: %s", deployment.get("deployment_id"), deployment.get("status")
    )
    if request.wait:
        out = click.get_current_context().find_object(Output) or Output()
        deployment = follow(client, deployment, timeout=request.timeout, out=out)
    return deployment


def engine_log(message: str) -> None:
    """The build speaks in lines; its "warning: ..." ones are warnings, tool output is debug."""
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


def _ttl_seconds(value: str | None) -> int | None:
    from aether_cli import durations

    if value is None:
        return None
    seconds = durations.seconds(value)
    if seconds is None or seconds < 1:
        raise click.BadParameter(
            f"{value!r} is not a lifetime (30s, 15m, 24h, 7d)", param_hint="'--ttl'"
        )
    return seconds


def _render(out: Output, summary: dict[str, Any]) -> None:
    status = summary["status"]
    if status in ("packed", "dry_run"):
        verb = "Packed" if status == "packed" else "Dry run: packed"
        out.line(f"{verb} {summary['artifact']}")
        out.line(f"  digest    {summary['digest']}")
        out.line(f"  size      {summary['size_bytes']:,} bytes, {summary['file_count']} files")
        for layer in summary["layers"]:
            out.line(f"  {layer['role']:<9} {layer['size']:,} bytes, sha256:{layer['digest'][:12]}")
        out.line(f"  target    {summary['platform']}, {summary['runtime']}")
        out.line(f"  start     {summary['start_command']}")
        if summary.get("app"):
            out.line(f"  app       {summary['app']} (nothing was sent)")
        return
    deployment_id = summary["deployment_id"]
    if status == "succeeded":
        out.line(
            f"Deployed {summary['app']}" + (f": {summary['url']}" if summary.get("url") else "")
        )
    else:
        words = str(status).replace("_", " ")
        out.line(
            f"Deployment {deployment_id} of {summary['app']} is {words}; "
            f"follow it with `aether status {deployment_id} --follow`"
        )
    out.line(f"  deployment  {deployment_id}")
    if summary.get("preview"):
        shown = summary["preview"]
        out.line(f"  preview     of {shown['base']}, until {shown['expires_at']}")
    out.line(
        f"  digest      {summary['digest']}"
        + ("" if summary["uploaded"] else " (already uploaded)")
    )
    if summary["uploaded"]:
        sent = [layer["role"] for layer in summary["layers"] if layer["uploaded"]]
        out.line(
            f"  uploaded    {summary['uploaded_bytes']:,} bytes"
            + (f" ({', '.join(sent)} layer{'s' if len(sent) > 1 else ''})" if sent else "")
        )
    if summary.get("url"):
        out.line(f"  url         {summary['url']}")
