"""Signing in with the embedded stack's OpenID provider: its login form driven by a real HTTP
client (``tests.oidc.browser``), both flows, refresh, revocation, roles, and where tokens go."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from aether_cli.contract import supported_node_lines

from chalicelib.contract import default_runtime
from infra.local import oidc
from infra.local.private import PrivateStack, private_stack
from tests.cli.fixtures_commands import write_project
from tests.oidc import browser

AETHER = str(Path(sys.executable).with_name("aether"))
ROOT = Path(__file__).resolve().parents[2]

MISSING = (
    "needs node"
    if shutil.which("node") is None
    else None
    if oidc.installed()
    else "needs oidc-provider (`make fixtures`, or `npm ci --prefix infra/local/oidc-provider`)"
)
if MISSING and os.environ.get("CI"):
    pytest.fail(f"the sign-in tests must run in CI: {MISSING}", pytrace=False)
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


class Cli:
    """The ``aether`` CLI as one user on one machine: its own config and cache directories,
    no AETHER_TOKEN, and ``tests.oidc.browser`` as its browser."""

    def __init__(self, stack: PrivateStack, home: Path, role: str) -> None:
        self.stack = stack
        self.home = home
        self.user = stack.env[f"AETHER_LOCAL_{role.upper()}_USER"]
        self.password = stack.env[f"AETHER_LOCAL_{role.upper()}_PASSWORD"]
        env = {**stack.cli_env(), "HOME": str(home)}
        env.pop("AETHER_TOKEN")
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
        env.update(
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_CACHE_HOME=str(home / "cache"),
            AETHER_TEST_SIGN_IN_USER=self.user,
            AETHER_TEST_SIGN_IN_PASSWORD=self.password,
            BROWSER=f"{sys.executable} -m tests.oidc.browser %s",
            PYTHONPATH=str(ROOT),
        )
        self.env = env

    @property
    def session_path(self) -> Path:
        return self.home / "cache" / "aether" / "session.json"

    def session(self) -> dict[str, Any]:
        return dict(json.loads(self.session_path.read_text()))

    def run(self, *args: str, exit_code: int = 0, env: dict[str, str] | None = None) -> Any:
        done = subprocess.run(
            [AETHER, "--log-level", "debug", *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == exit_code, done.stdout + done.stderr
        return done

    def login_in_browser(self) -> subprocess.CompletedProcess[str]:
        done: subprocess.CompletedProcess[str] = self.run(
            "login", "--sso", "--api-url", self.stack.api_url
        )
        return done

    def login_on_device(self, *flags: str) -> str:
        """``aether login`` without a browser: it shows a code, entered here as a user would
        on a phone; returns what the CLI said."""
        env = {k: v for k, v in self.env.items() if k != "BROWSER"}
        signing_in = subprocess.Popen(
            [AETHER, "--log-level", "debug", "login", *flags, "--api-url", self.stack.api_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert signing_in.stderr is not None
        said = ""
        while "or open " not in said:
            line = signing_in.stderr.readline()
            assert line, f"the CLI ended before showing a code: {said}"
            said += line
        url = said.split("or open ")[1].split()[0]
        page = browser.complete(url, self.user, self.password)
        assert "Signed in" in page.text, page.text
        stdout, stderr = signing_in.communicate(timeout=120)
        assert signing_in.returncode == 0, said + stderr
        return said + stdout + stderr


@pytest.fixture
def developer(stack: PrivateStack, tmp_path: Path) -> Cli:
    return Cli(stack, tmp_path / "developer", "developer")


@pytest.fixture
def admin(stack: PrivateStack, tmp_path: Path) -> Cli:
    return Cli(stack, tmp_path / "admin", "admin")


def whoami(cli: Cli) -> dict[str, Any]:
    return dict(json.loads(cli.run("whoami", "--format", "json").stdout))


def test_make_up_writes_the_users_and_the_issuer_to_local_env(stack: PrivateStack) -> None:
    local_env = stack.state / "local.env"
    assert stat.S_IMODE(local_env.stat().st_mode) == 0o600
    issuer = stack.env["AETHER_OIDC_ISSUER"]
    assert issuer == f"http://127.0.0.1:{stack.launch_env['AETHER_OIDC_PORT']}"
    for role in ("ADMIN", "DEVELOPER"):
        assert stack.env[f"AETHER_LOCAL_{role}_USER"] == f"{role.lower()}@aether.local"
        assert len(stack.env[f"AETHER_LOCAL_{role}_PASSWORD"]) >= 20
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == issuer
    assert "S256" in discovery["code_challenge_methods_supported"]
    config = requests.get(f"{stack.api_url}/auth/config", timeout=10).json()["oidc"]
    assert config["issuer"] == issuer
    assert config["client_id"] == oidc.CLI_CLIENT_ID
    for private in (stack.state / "oidc").iterdir():
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private


def test_the_provider_listens_on_loopback_only(stack: PrivateStack) -> None:
    port = int(stack.launch_env["AETHER_OIDC_PORT"])
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A"  # LISTEN
    ]
    bound = [address for address in listening if int(address.split(":")[1], 16) == port]
    assert bound == ["0100007F:" + f"{port:04X}"]


def test_the_provider_runs_on_the_default_runtime_whatever_node_the_machine_has(
    stack: PrivateStack,
) -> None:
    """The process itself, not what PATH offers: its executable reports the contract's
    default runtime, a line in support, and the provider saw no runtime to warn about."""
    major = int(default_runtime().removeprefix("node"))
    assert major in {line.major for line in supported_node_lines()}
    executable = Path(f"/proc/{stack.pid('oidc')}/exe").resolve()
    reported = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    assert reported.startswith(f"v{major}."), (executable, reported)
    log = (stack.state / "logs" / "oidc.log").read_text()
    assert f"(Node.js {reported})" in log
    assert "Unsupported runtime" not in log


def test_the_provider_runtime_is_one_the_contract_supports() -> None:
    assert oidc.runtime_major() == int(default_runtime().removeprefix("node"))
    assert oidc.runtime_major() in {line.major for line in supported_node_lines()}


def test_of_rotations_of_one_token_at_once_one_wins(stack: PrivateStack) -> None:
    """Through the CLI, against the stack's records server, which applies each transaction
    whole as DynamoDB does (plain moto server does not serialise concurrent conditional
    writes): one replacement, every other rotation refused in one line."""
    from concurrent.futures import ThreadPoolExecutor

    env = stack.cli_env()
    made = subprocess.run(
        [AETHER, "tokens", "create", "--subject", "rotated-at-once", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    old = json.loads(made.stdout)

    def rotate(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AETHER, "tokens", "rotate", old["token_id"], "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(rotate, range(4)))
    won = [json.loads(done.stdout) for done in outcomes if done.returncode == 0]
    lost = [done for done in outcomes if done.returncode != 0]
    assert len(won) == 1, [done.stderr for done in outcomes]
    assert {done.returncode for done in lost} == {20}
    assert all(
        len(done.stderr.strip().splitlines()) == 1 and "(conflict, HTTP 409)" in done.stderr
        for done in lost
    )
    listed = subprocess.run(
        [AETHER, "tokens", "list", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    alive = [
        token["token_id"]
        for token in json.loads(listed.stdout)["tokens"]
        if token["subject"] == "rotated-at-once" and not token["revoked"]
    ]
    assert alive == [won[0]["token_id"]]


def test_a_wrong_password_is_refused_at_the_form(stack: PrivateStack, developer: Cli) -> None:
    env = {**developer.env, "AETHER_TEST_SIGN_IN_PASSWORD": "not-the-password"}
    issuer = stack.env["AETHER_OIDC_ISSUER"]
    with requests.Session() as http:
        page = http.get(
            f"{issuer}/auth",
            params={
                "client_id": oidc.CLI_CLIENT_ID,
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": "http://127.0.0.1:9/callback",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
            },
            timeout=30,
        )
        refused = browser.sign_in(http, page, developer.user, env["AETHER_TEST_SIGN_IN_PASSWORD"])
    assert refused.status_code == 401
    assert "Wrong user or password" in refused.text
    assert "/callback" not in refused.url


def test_browser_sign_in_as_the_developer(stack: PrivateStack, developer: Cli) -> None:
    done = developer.login_in_browser()
    assert "Signed in to" in done.stdout
    assert "browser: HTTP 200 at http://127.0.0.1:" in done.stderr  # the loopback redirect
    who = whoami(developer)
    assert who["role"] == "developer"
    assert who["issuer"] == stack.env["AETHER_OIDC_ISSUER"]
    assert who["subject"].startswith("oidc:")
    expires = datetime.fromisoformat(who["expires_at"])
    lifetime = expires - datetime.now(UTC)
    assert timedelta(0) < lifetime <= timedelta(seconds=oidc.ACCESS_TOKEN_TTL_SECONDS)


def test_device_sign_in_without_a_browser_as_the_admin(stack: PrivateStack, admin: Cli) -> None:
    said = admin.login_on_device("--sso")  # no BROWSER, no DISPLAY: the device flow by itself
    assert "enter the code" in said
    assert whoami(admin)["role"] == "admin"


def test_device_sign_in_on_request(developer: Cli) -> None:
    developer.login_on_device("--device")
    assert whoami(developer)["role"] == "developer"


def test_the_access_token_is_refreshed_before_it_expires(developer: Cli) -> None:
    developer.login_in_browser()
    before = developer.session()
    # The token has (as the CLI sees it) seconds left: the next command refreshes it first.
    nearly = (datetime.now(UTC) + timedelta(seconds=20)).isoformat(timespec="seconds")
    developer.session_path.write_text(json.dumps({**before, "expires_at": nearly}))
    developer.session_path.chmod(0o600)
    who = whoami(developer)
    after = developer.session()
    assert who["role"] == "developer"
    assert after["token"] != before["token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated: a public client
    assert datetime.fromisoformat(after["expires_at"]) > datetime.fromisoformat(nearly)
    assert stat.S_IMODE(developer.session_path.stat().st_mode) == 0o600
    # The spent refresh token is no good any more.
    assert refresh_with(developer, before["refresh_token"]).status_code == 400


def test_a_deploy_works_across_a_refresh(
    stack: PrivateStack, developer: Cli, tmp_path: Path
) -> None:
    developer.login_in_browser()
    before = developer.session()
    nearly = (datetime.now(UTC) + timedelta(seconds=20)).isoformat(timespec="seconds")
    developer.session_path.write_text(json.dumps({**before, "expires_at": nearly}))
    project = write_project(
        tmp_path / "signed-in", name=f"signed-in-{os.getpid()}", extra={"engines": {"node": ">=22"}}
    )
    done = developer.run(
        "deploy", "--path", str(project), "--no-sbom", "--no-wait", "--format", "json"
    )
    deployed = json.loads(done.stdout)
    assert developer.session()["token"] != before["token"]
    listed = json.loads(developer.run("list", "--format", "json").stdout)
    assert deployed["app"] in [app["name"] for app in listed["apps"]]
    assert_no_token_in(done.stdout + done.stderr, developer.session(), before)


def test_logout_revokes_the_refresh_token(developer: Cli) -> None:
    developer.login_in_browser()
    saved = developer.session()
    done = developer.run("logout")
    assert "Revoked the refresh token" in done.stdout
    assert not developer.session_path.exists()
    refused = refresh_with(developer, saved["refresh_token"], saved["issuer"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_a_developer_sees_only_its_own_apps(
    stack: PrivateStack, developer: Cli, admin: Cli
) -> None:
    developer.login_in_browser()
    admin.login_on_device("--device")
    api = stack.api_url
    mine, theirs = f"dev-own-{os.getpid()}", f"admin-own-{os.getpid()}"
    as_developer = {"Authorization": f"Bearer {developer.session()['token']}"}
    as_admin = {"Authorization": f"Bearer {admin.session()['token']}"}
    assert requests.post(f"{api}/apps", json={"name": mine}, headers=as_developer, timeout=30).ok
    assert requests.post(f"{api}/apps", json={"name": theirs}, headers=as_admin, timeout=30).ok
    seen = [a["name"] for a in json.loads(developer.run("list", "--format", "json").stdout)["apps"]]
    assert mine in seen and theirs not in seen
    assert requests.get(f"{api}/apps/{theirs}", headers=as_developer, timeout=30).status_code == 404
    everything = json.loads(admin.run("list", "--format", "json").stdout)["apps"]
    assert {mine, theirs} <= {a["name"] for a in everything}


def test_no_token_in_a_file_others_can_read_or_in_the_logs(developer: Cli) -> None:
    signed_in = developer.login_in_browser()
    listed = developer.run("list")
    saved = developer.session()
    assert_no_token_in(signed_in.stdout + signed_in.stderr + listed.stdout + listed.stderr, saved)
    secrets = [saved["token"], saved["refresh_token"]]
    holding = []
    for path in developer.home.rglob("*"):
        if path.is_file() and any(s in path.read_text(errors="replace") for s in secrets):
            holding.append(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert holding == [developer.session_path]
    assert stat.S_IMODE(developer.session_path.parent.stat().st_mode) == 0o700


def test_a_sign_in_outlives_a_provider_crash_and_its_rotated_key_verifies_at_once(
    stack: PrivateStack, developer: Cli
) -> None:
    """The provider is killed, rotates its signing key and starts again; the API keeps running.
    The CLI's refresh token still works, and the token it gets, signed by a key the API has
    never seen, is accepted: the API refetches the keys for the new key id."""
    developer.login_in_browser()
    before = developer.session()
    old_kid = token_kid(before["token"])
    new_kid = oidc.rotate_signing_key(stack.state / "oidc")
    stack.kill("oidc")
    wait_until_gone(stack.pid("oidc"))
    stack.up()  # starts the provider alone
    nearly = (datetime.now(UTC) + timedelta(seconds=20)).isoformat(timespec="seconds")
    developer.session_path.write_text(json.dumps({**before, "expires_at": nearly}))
    assert whoami(developer)["role"] == "developer"
    refreshed = developer.session()["token"]
    assert token_kid(refreshed) == new_kid != old_kid
    developer.login_in_browser()  # and a new sign-in too
    assert token_kid(developer.session()["token"]) == new_kid


@contextmanager
def serve_auth_config(port: int, body: dict[str, Any]) -> Iterator[None]:
    """A control plane that only answers ``GET /auth/config``."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(200 if self.path == "/auth/config" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def token_kid(token: str) -> str:
    import base64

    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def wait_until_gone(pid: int) -> None:
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def refresh_with(cli: Cli, refresh_token: str, issuer: str | None = None) -> requests.Response:
    issuer = issuer or cli.stack.env["AETHER_OIDC_ISSUER"]
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    return requests.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": oidc.CLI_CLIENT_ID,
        },
        timeout=30,
    )


def assert_no_token_in(text: str, *sessions: dict[str, Any]) -> None:
    for saved in sessions:
        for name in ("token", "refresh_token"):
            assert saved[name] not in text, f"the {name} is in the output"


def test_a_fixed_loopback_redirect_is_used_as_the_platform_gives_it(
    stack: PrivateStack, developer: Cli
) -> None:
    """A provider that wants the redirect exact (Cognito) gets it: that port, that path."""
    import threading

    from aether_cli import login

    from infra.local.processes import free_port

    port = free_port()
    provider = login.discover(
        {
            "issuer": stack.env["AETHER_OIDC_ISSUER"],
            "client_id": oidc.CLI_CLIENT_ID,
            "scopes": ["openid", "offline_access"],
            "redirect_uri": f"http://127.0.0.1:{port}/callback",
        }
    )
    opened: list[str] = []

    def open_url(url: str) -> bool:
        opened.append(url)
        threading.Thread(
            target=browser.complete, args=(url, developer.user, developer.password), daemon=True
        ).start()
        return True

    tokens = login.browser_sign_in(provider, lambda _: None, open_url=open_url)
    assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fcallback" in opened[0]
    assert tokens.refresh_token and tokens.expires_at is not None


def test_a_refresh_the_provider_refuses_says_to_sign_in_again(developer: Cli) -> None:
    developer.login_in_browser()
    saved = developer.session()
    revoked = requests.post(
        f"{saved['issuer']}/token/revocation",
        data={"token": saved["refresh_token"], "client_id": oidc.CLI_CLIENT_ID},
        timeout=30,
    )
    assert revoked.status_code == 200
    nearly = (datetime.now(UTC) + timedelta(seconds=20)).isoformat(timespec="seconds")
    developer.session_path.write_text(json.dumps({**saved, "expires_at": nearly}))
    done = developer.run("whoami", exit_code=10)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the identity provider refused: invalid_grant"), last
    assert "run `aether login` again" in last
    assert_no_token_in(done.stdout + done.stderr, saved)


def test_sso_against_a_platform_without_a_provider_is_one_line(tmp_path: Path) -> None:
    """The stack's API with no AETHER_OIDC_ISSUER: only stored tokens sign in."""
    from infra.local.processes import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "AWS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "c"), XDG_CACHE_HOME=str(tmp_path / "k"))
    with serve_auth_config(port, {"oidc": None}):
        done = subprocess.run(
            [AETHER, "login", "--sso", "--api-url", f"http://127.0.0.1:{port}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 10
    assert done.stderr.strip().splitlines() == [
        f"error: http://127.0.0.1:{port} names no identity provider; use `aether login --token`"
    ]
