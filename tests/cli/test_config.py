"""Config file, session file, settings precedence, app names, signing keys, exit-code table."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click
import nacl.signing
import pytest
from aether_cli import config, errors, session
from aether_cli.commands.logs import parse_since
from aether_cli.signing import load_signing_key, public_key_hex, sign_digest

from tests.cli.fixtures_commands import isolated_env

SEED = "11" * 32
DIGEST = "ab" * 32


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- session file -------------------------------------------------------------


def test_session_file_is_private_from_creation_even_with_permissive_umask(tmp_path: Path) -> None:
    path = session.session_path(isolated_env(tmp_path))
    old = os.umask(0)
    try:
        session.save(path, session.Session(api_url="http://127.0.0.1:1", token="secret"))
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert session.load(path) == session.Session(api_url="http://127.0.0.1:1", token="secret")
    assert [p.name for p in path.parent.iterdir()] == ["session.json"]  # no temp file left


def test_session_save_replaces_a_world_readable_file_with_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "aether" / "session.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"api_url": "http://old", "token": "old"}')
    path.chmod(0o644)
    session.save(path, session.Session(api_url="http://new", token="new"))
    assert mode_of(path) == 0o600
    loaded = session.load(path)
    assert loaded is not None and loaded.token == "new"


def test_damaged_session_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text("{not json")
    with pytest.raises(errors.ConfigError, match="damaged"):
        session.load(path)


def test_missing_session_loads_as_none_and_delete_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    assert session.load(path) is None
    assert session.delete(path) is False


def test_relative_xdg_dirs_are_ignored(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": "relative/cache"}
    assert session.session_path(env) == tmp_path / ".cache" / "aether" / "session.json"


# -- config file and precedence ---------------------------------------------------


def write_config(tmp_path: Path, text: str) -> dict[str, str]:
    env = isolated_env(tmp_path)
    path = config.config_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return env


def test_config_file_values_are_read(tmp_path: Path) -> None:
    env = write_config(
        tmp_path,
        'api_url = "http://127.0.0.1:9/"\ndefault_app = "billing"\nnamespace = "team-a"\n',
    )
    settings = config.load_settings(env)
    assert settings.api_url == "http://127.0.0.1:9"
    assert settings.config.default_app == "billing"
    assert settings.namespace == "team-a"
    assert settings.token is None


def test_environment_overrides_the_config_file(tmp_path: Path) -> None:
    env = write_config(tmp_path, 'api_url = "http://127.0.0.1:9"\nnamespace = "team-a"\n')
    env.update(
        AETHER_API_URL="http://127.0.0.1:10",
        AETHER_TOKEN="env-token",
        AETHER_DEFAULT_NAMESPACE="team-b",
        AETHER_SIGNING_KEY=SEED,
    )
    settings = config.load_settings(env)
    assert (settings.api_url, settings.token) == ("http://127.0.0.1:10", "env-token")
    assert settings.namespace == "team-b"
    assert settings.signing_key == SEED


def test_default_namespace(tmp_path: Path) -> None:
    assert config.load_settings(isolated_env(tmp_path)).namespace == "aether-apps"


def test_session_token_is_only_sent_to_the_url_it_was_issued_for(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    session.save(
        session.session_path(env), session.Session(api_url="http://127.0.0.1:9", token="t9")
    )
    assert config.load_settings(env).token == "t9"
    env["AETHER_API_URL"] = "http://127.0.0.1:10"
    settings = config.load_settings(env)
    assert settings.api_url == "http://127.0.0.1:10"
    assert settings.token is None
    with pytest.raises(errors.ConfigError, match=r"not logged in to http://127\.0\.0\.1:10"):
        config.require_credentials(settings)


def test_no_api_url_anywhere_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="no control plane"):
        config.require_credentials(config.load_settings(isolated_env(tmp_path)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api_url = ", "not valid TOML"),
        ("api_url = 3\n", "must be a non-empty string"),
        ('default_app = "@scope/x"\n', "not a valid app name"),
        ('api_url = "ftp://x"\n', "must start with http"),
    ],
)
def test_bad_config_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    env = write_config(tmp_path, text)
    with pytest.raises(errors.ConfigError, match=message):
        config.load_settings(env)


# -- app names -----------------------------------------------------------------------


def test_app_name_comes_from_flag_then_config_then_package_json(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "from-package"}')
    plain = config.load_settings(isolated_env(tmp_path / "a"))
    assert config.resolve_app_name("from-flag", plain, tmp_path) == "from-flag"
    assert config.resolve_app_name(None, plain, tmp_path) == "from-package"
    env = write_config(tmp_path / "b", 'default_app = "from-config"\n')
    assert config.resolve_app_name(None, config.load_settings(env), tmp_path) == "from-config"


@pytest.mark.parametrize("name", ["@acme/web", "Web", "web_app", "-web", "a" * 64, "9lives"])
def test_package_names_that_are_not_dns_labels_ask_for_app(tmp_path: Path, name: str) -> None:
    (tmp_path / "package.json").write_text(f'{{"name": "{name}"}}')
    settings = config.load_settings(isolated_env(tmp_path))
    with pytest.raises(errors.ConfigError) as caught:
        config.resolve_app_name(None, settings, tmp_path)
    assert caught.value.exit_code == 10
    assert caught.value.hint is not None and "--app" in caught.value.hint


def test_missing_package_name_asks_for_app(tmp_path: Path) -> None:
    settings = config.load_settings(isolated_env(tmp_path))
    with pytest.raises(errors.ConfigError, match="no app name"):
        config.resolve_app_name(None, settings, tmp_path)


# -- signing keys ----------------------------------------------------------------------


def test_signing_key_from_hex_seed_signs_the_hex_digest_string() -> None:
    key = load_signing_key(SEED)
    signature = sign_digest(key, DIGEST)
    verify = nacl.signing.VerifyKey(bytes.fromhex(public_key_hex(key)))
    assert verify.verify(DIGEST.encode(), bytes.fromhex(signature)) == DIGEST.encode()


def test_signing_key_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(SEED + "\n")
    path.chmod(0o600)
    assert public_key_hex(load_signing_key(str(path))) == public_key_hex(load_signing_key(SEED))


@pytest.mark.parametrize("content", ["zz" * 32, "ab" * 31, ""])
def test_bad_signing_key_files_are_config_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "key"
    path.write_text(content)
    with pytest.raises(errors.ConfigError):
        load_signing_key(str(path))


def test_signing_key_that_is_neither_seed_nor_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="neither"):
        load_signing_key(str(tmp_path / "missing"))


# -- --since ---------------------------------------------------------------------------


def test_since_accepts_durations_and_times() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_since("90s", now) == "2025-01-02T03:02:35Z"
    assert parse_since("1h30m", now) == "2025-01-02T01:34:05Z"
    assert parse_since("2d", now) == "2024-12-31T03:04:05Z"
    assert parse_since("2025-01-01T10:00:00+02:00") == "2025-01-01T08:00:00Z"
    assert parse_since("2025-01-01T10:00:00Z") == "2025-01-01T10:00:00Z"
    with pytest.raises(click.BadParameter):
        parse_since("yesterday")


# -- the exit-code table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "exit_code", "code"),
    [
        (errors.UsageError("x"), 2, "usage"),
        (click.UsageError("x"), 2, "usage"),
        (errors.ConfigError("x"), 10, "config"),
        (errors.InternalError("x"), 20, "internal"),
        (errors.LocalIOError("x"), 30, "io"),
        (PermissionError(13, "Permission denied", "/x"), 30, "io"),
        (errors.NetworkError("x"), 40, "network"),
        (errors.ApiError(401, "unauthorized", "bad token"), 10, "unauthorized"),
        (errors.ApiError(403, "forbidden", "no"), 10, "forbidden"),
        (errors.ApiError(404, "not_found", "no app"), 20, "not_found"),
        (errors.ApiError(409, "artifact_not_verified", "rejected"), 20, "artifact_not_verified"),
        (errors.ApiError(503, "service_unavailable", "down"), 40, "service_unavailable"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (RuntimeError("boom"), 20, "internal"),
    ],
)
def test_every_failure_maps_to_the_spec_exit_codes(
    exc: BaseException, exit_code: int, code: str
) -> None:
    failure = errors.classify(exc)
    assert (failure.exit_code, failure.code) == (exit_code, code)
    assert "\n" not in failure.human_line()


def test_packing_engine_errors_map_to_config_and_io() -> None:
    from aether_cli.pack import PackError
    from aether_cli.project import ProjectError, ToolMissingError

    assert errors.classify(ProjectError("no package.json")).exit_code == 10
    assert errors.classify(ToolMissingError("npm missing")).exit_code == 10
    assert errors.classify(PackError("cannot read")).exit_code == 30
