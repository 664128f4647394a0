"""The READMEs and the demo name only commands, options and variables that exist, and say
what the code does (ports, the readiness probe, what ``aether deploy`` writes)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
from aether_cli.main import cli

from tests.cli.fixtures_commands import AETHER, isolated_env, write_project

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLI_README = ROOT / "cli" / "README.md"
DOCUMENTS = (README, CLI_README, ROOT / "infra" / "README.md", ROOT / "infra/local/demo.sh")
_INVOCATION = re.compile(r"(?<![\w-])aether((?: [a-z][a-z-]*)+)?((?: [^|;#`)&]*)?)")


def code_spans(text: str) -> Iterator[str]:
    """Inline `code` and the lines of fenced blocks (comments dropped), as a reader runs them."""
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield line.split(" #")[0]
        else:
            yield from re.findall(r"`([^`]+)`", line)


def invocations(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """(words, options) of each ``aether ...`` a document shows."""
    text = path.read_text().replace('"$aether"', "aether")
    spans = text.splitlines() if path.suffix == ".sh" else code_spans(text)
    for span in spans:
        for segment in re.split(r"\||&&|;|\$\(", span):
            match = _INVOCATION.search(segment)
            if match and match.group(1):
                # After "--" the words are a command's own (``aether run -- node -e ...``).
                after = segment[match.start() :].split(" -- ")[0]
                yield match.group(1).split(), re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", after)


def resolve(words: list[str]) -> tuple[list[click.Command], list[str]]:
    """The commands the words name (the group, then its subcommand) and the words left."""
    context = click.Context(cli)
    commands: list[click.Command] = [cli]
    left = list(words)
    while left and isinstance(commands[-1], click.Group):
        command = commands[-1].get_command(context, left[0])
        if command is None:
            break
        commands.append(command)
        left.pop(0)
    return commands, left


def test_every_command_and_option_the_docs_show_exists() -> None:
    shown = [(path, inv) for path in DOCUMENTS for inv in invocations(path)]
    assert len(shown) > 20  # the scan found the documents' commands
    for path, (words, options) in shown:
        commands, _ = resolve(words)
        assert len(commands) > 1, f"{path.name}: aether {' '.join(words)}"
        last = commands[-1]
        runs_alone = isinstance(last, click.Group) and last.invoke_without_command
        assert runs_alone or not isinstance(last, click.Group), f"{path.name}: {words}"
        known = {opt for command in commands for p in command.params for opt in p.opts}
        known |= {"-h", "--help"}
        unknown = [option for option in options if option not in known]
        assert unknown == [], f"{path.name}: aether {' '.join(words)} {unknown}"


def test_every_command_is_documented_in_the_cli_readme() -> None:
    documented = {tuple(words[:2]) for words, _ in invocations(CLI_README)}
    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        if isinstance(command, click.Group):
            for sub in command.list_commands(context):
                assert (name, sub) in documented, f"aether {name} {sub}"
        else:
            assert any(words[0] == name for words in documented), f"aether {name}"


def variables_read(paths: list[Path], pattern: str) -> set[str]:
    return {name for path in paths for name in re.findall(pattern, path.read_text())}


def test_the_readme_names_every_setting_of_the_embedded_stack() -> None:
    settings = variables_read(
        sorted((ROOT / "infra" / "local").glob("*.py")),
        r'os\.environ\.get\("(AETHER_[A-Z_]+)"',
    )
    assert {"AETHER_STATE_DIR", "AETHER_KUBE_PORT", "AETHER_APP_PORT_BASE"} <= settings
    text = README.read_text()
    assert sorted(name for name in settings if f"`{name}`" not in text) == []


def test_the_cli_readme_names_every_variable_the_cli_reads() -> None:
    read = variables_read(
        sorted((ROOT / "cli" / "aether_cli").rglob("*.py")), r'"((?:AETHER_[A-Z_]+)|NO_COLOR)"'
    )
    assert {"AETHER_TOKEN", "AETHER_SIGNING_KEY", "NO_COLOR"} <= read
    text = CLI_README.read_text()
    assert sorted(name for name in read if f"`{name}`" not in text) == []


def test_every_variable_the_readmes_name_is_read_somewhere() -> None:
    code = "\n".join(
        path.read_text()
        for pattern in ("*.py", "*.sh", "*.json")
        for path in ROOT.glob(f"**/{pattern}")
        if not {".venv", "node_modules", ".aether", "tests"} & set(path.parts)
    )
    for document in (README, CLI_README):
        named = set(re.findall(r"`(AETHER_[A-Z_]+)", document.read_text()))
        assert sorted(name for name in named if name not in code) == [], document.name


def test_the_readme_puts_aether_on_path_before_calling_it_bare() -> None:
    text = README.read_text()
    for way in (". .venv/bin/activate", "pip install ./cli", "pipx install ./cli"):
        assert way in text
    assert 'aether = "aether_cli.main:run"' in (ROOT / "cli" / "pyproject.toml").read_text()
    first_bare = min(
        i
        for i, line in enumerate(text.splitlines())
        if re.match(r"(?:cd \S+ && )?aether ", line.split(" #")[0].strip())
    )
    lines = text.splitlines()
    activated = next(i for i, line in enumerate(lines) if line.startswith(". .venv/bin/activate"))
    assert activated < first_bare


def test_the_readme_says_local_env_exports_a_token_that_wins_over_a_login() -> None:
    text = " ".join(README.read_text().split())
    assert "While `AETHER_TOKEN` is set it wins over any `aether login`" in text
    assert "`unset AETHER_TOKEN`" in text


def test_the_readiness_contract_is_the_probe_the_platform_sets() -> None:
    from chalicelib.manifests import WorkloadSpec, workload_manifests

    spec = WorkloadSpec(
        app_name="web",
        deployment_id="0b6f1c8e-4a52-4f0e-9a43-5d2e7c1b9f00",
        digest="ab" * 32,
        node_major=22,
        start_command="npm start",
        env={},
        replicas=1,
        namespace="aether-apps",
        artifact_url="http://127.0.0.1:9/artifacts/x/download",
    )
    (deployment,) = [m for m in workload_manifests(spec, "pull-token") if m["kind"] == "Deployment"]
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    probe = app["readinessProbe"]
    assert set(probe) & {"tcpSocket", "httpGet", "exec"} == {"tcpSocket"}
    text = " ".join(README.read_text().split())
    assert "ready once it accepts a TCP connection on `PORT`" in text
    assert (probe["initialDelaySeconds"], probe["periodSeconds"]) == (0, 1)
    assert "connects every second from its start" in text
    assert "There is no HTTP health path" in text
    example = (ROOT / "examples" / "hello-express" / "server.js").read_text()
    assert "probes /healthz" not in example and "TCP probe" in example


def test_what_deploy_writes_into_the_project_is_documented(tmp_path: Path) -> None:
    project = write_project(tmp_path / "app")
    env = isolated_env(tmp_path, AETHER_SIGNING_KEY="33" * 32)
    done = subprocess.run(
        [AETHER, "deploy", "--pack-only", "--path", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The staging copy's and target installs' contents are the project's and its
    # dependencies': the directories themselves are what must be documented.
    copies = ("staging", "target-")
    written = sorted(
        path
        for path in (project / ".aether").rglob("*")
        if not any(part.startswith(copies) for part in path.relative_to(project).parts[1:-1])
    )
    assert written
    text = CLI_README.read_text()
    for path in written:
        shown = f"`{path.relative_to(project)}/`" if path.is_dir() else f"`{path.name}`"
        assert shown in text, path


def test_the_readme_says_a_restart_of_the_stack_loses_nothing() -> None:
    text = " ".join(README.read_text().split())
    assert "Nothing is lost when the stack stops: `make down && make up`" in text
    assert "every app, artifact and token is gone" not in text
