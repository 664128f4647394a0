"""The simulator's credential: a random token per simulator, in a kubeconfig only its owner can
read, and hooks that a shared stack keeps off HTTP."""

from __future__ import annotations

import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from infra.kubesim import Simulator


def _status(url: str, token: str | None, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_each_simulator_has_its_own_random_token(tmp_path: Path) -> None:
    with Simulator() as first, Simulator() as second:
        assert first.token != second.token
        assert len(first.token) >= 32
        written = yaml.safe_load(first.write_kubeconfig(tmp_path / "kubeconfig").read_text())
        assert written["users"][0]["user"]["token"] == first.token


def test_the_kubeconfig_is_readable_by_its_owner_only(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("an older, world-readable file\n")
    path.chmod(0o644)

    sim.write_kubeconfig(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["kubeconfig"]  # no temporary left
    api = config.new_client_from_config(config_file=str(path))
    assert client.CoreV1Api(api).list_namespace().items is not None


@pytest.mark.parametrize(
    "sent",
    [None, "", "wrong", "aether-sim-token", "PREFIX", "PREFIX+x", "PREFIX-without-last"],
)
def test_a_request_without_the_exact_token_is_refused(sim: Simulator, sent: str | None) -> None:
    if sent is not None:
        sent = {
            "PREFIX": sim.token,
            "PREFIX+x": sim.token + "x",
            "PREFIX-without-last": sim.token[:-1],
        }.get(sent, sent)
    expected = 200 if sent == sim.token else 401

    assert _status(f"{sim.url}/api/v1/namespaces", sent) == expected


def test_a_shared_stack_keeps_the_hooks_off_http() -> None:
    with Simulator(http_hooks=False) as shared:
        for hook in ("reset", "api-down", "faults"):
            assert _status(f"{shared.url}/_sim/{hook}", None, "POST") == 401
            assert _status(f"{shared.url}/_sim/{hook}", shared.token, "POST") == 404
        assert _status(f"{shared.url}/_sim/state", None) == 401
        assert shared.api_down is False
        shared.set_api_down(True)  # the methods stay
        assert _status(f"{shared.url}/api/v1/namespaces", shared.token) == 503
