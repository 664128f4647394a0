"""``aether run`` and ``aether runs``: a command run once in a new pod of the serving release.

The run is the platform's (a Kubernetes Job with the app's artifact, config and pod spec);
this command starts it, prints its output as it comes, and exits with its exit code. Ctrl-C
stops it: its Job and pod are deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from aether_cli.commands.apps import app_option
from aether_cli.contract import JOB_CONTAINER
from aether_cli.errors import EXIT_INTERRUPTED, AetherError
from aether_cli.output import Output, format_option
from aether_cli.terminal import paint_status

if TYPE_CHECKING:
    from aether_cli.client import ApiClient
    from aether_cli.interrupts import Interrupt


class RunFailed(AetherError):
    """The run ended without an exit code of its command (it never started, or its time
    limit stopped it)."""

    default_code = "run_failed"


class StoppedRun(AetherError):
    """Ctrl-C: the run was stopped (its Job deleted)."""

    exit_code = EXIT_INTERRUPTED
    default_code = "interrupted"


@click.command(context_settings={"allow_interspersed_args": False})
@app_option()
@click.option("--detach", "-d", is_flag=True, help="Start it and print its id; do not follow.")
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="Stop it after this long. Default: the platform's (15 minutes unless configured).",
)
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=0.5, hidden=True)
@format_option("Output as text, or one JSON object per line and the run last (JSON Lines).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def run(
    out: Output,
    app: str | None,
    detach: bool,
    timeout: int | None,
    poll_interval: float,
    fmt: str,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND once in a new pod of the app's serving release.

    \b
    The pod has the release's artifact and config, as the app's own pods do:
      aether run -- npm run migrate
      aether run -- node -e "console.log(process.env.DATABASE_URL)"
    COMMAND runs as given, without a shell: `aether run -- sh -c '...'` for one.
    Prints its output and exits with its exit code; Ctrl-C stops it.
    """
    client, name = _connect(app)
    started = client.start_run(name, list(command), timeout_seconds=timeout)
    run_id = str(started["run_id"])
    if detach:
        out.result(
            started,
            lambda: out.line(
                f"run {run_id} of {name} started; see it with `aether runs` and its output "
                f"with `aether logs --run {run_id}`"
            ),
        )
        return 0
    from aether_cli.interrupts import deferred

    try:
        with deferred() as interrupt:
            ended = _follow(client, out, name, run_id, interrupt, poll_interval)
    except KeyboardInterrupt:
        try:
            client.stop_run(name, run_id)
        except AetherError as exc:
            raise StoppedRun(
                f"interrupted; stopping run {run_id} failed: {exc.message}",
                hint=f"its time limit stops it; or retry: `aether runs --app {name}`",
            ) from None
        raise StoppedRun(f"stopped run {run_id}: its pod is deleted") from None
    if out.json:
        out.record(ended)
    exit_code = ended.get("exit_code")
    if ended.get("status") == "succeeded":
        return 0
    if isinstance(exit_code, int):
        return exit_code
    raise RunFailed(
        f"run {run_id} failed: {ended.get('reason') or 'unknown'}",
        hint=f"see `aether logs --run {run_id}`",
    )


def _connect(app: str | None) -> tuple[ApiClient, str]:
    from pathlib import Path

    from aether_cli import config
    from aether_cli.client import connect

    settings = config.load_settings()
    return connect(settings), config.resolve_app_name(app, settings, Path.cwd())


def _follow(
    client: ApiClient,
    out: Output,
    app: str,
    run_id: str,
    interrupt: Interrupt,
    poll_interval: float,
) -> dict[str, Any]:
    """Print the run's output until it has ended; returns the ended run.

    Its state is read before its output: once the state says it ended, the output read
    after it is complete.
    """
    from aether_cli.commands.logs import LineDeduplicator
    from aether_cli.log import get_logger

    log = get_logger()
    dedupe = LineDeduplicator()
    since: str | None = None
    while True:
        state = client.get_run(app, run_id)
        interrupt.check()
        page = client.run_logs(app, run_id, since=since)
        for line in page.get("lines") or []:
            if not dedupe.fresh(line):
                continue
            if line.get("container") != JOB_CONTAINER:
                log.debug("%s: %s", line.get("container"), line.get("message", ""))
            elif out.json:
                out.record(line)
            else:
                click.echo(str(line.get("message", "")))
        since = page.get("next_since") or since
        if state.get("status") != "running":
            return state
        interrupt.wait(poll_interval)
        interrupt.check()


@click.command()
@app_option()
@format_option()
@click.pass_obj
def runs(out: Output, app: str | None, fmt: str) -> None:
    """The app's recent one-off runs, newest first (those the platform still keeps)."""
    client, name = _connect(app)
    listed = client.list_runs(name)

    def text() -> None:
        if not listed:
            out.line(f"{name} has no recent runs. Start one with `aether run -- COMMAND`.")
            return
        rows = [
            [
                r.get("run_id"),
                paint_status(r.get("status")),
                "-" if r.get("exit_code") is None else r.get("exit_code"),
                f"v{r['version']}" if r.get("version") is not None else "-",
                r.get("created_by"),
                r.get("created_at"),
                " ".join(r.get("command") or []),
            ]
            for r in listed
        ]
        out.table(["RUN", "STATUS", "EXIT", "RELEASE", "BY", "STARTED", "COMMAND"], rows)

    out.result({"app_name": name, "runs": listed}, text)
