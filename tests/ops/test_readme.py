"""infra/README.md keeps up with the settings and the scripts it documents."""

from __future__ import annotations

import re

from tests.ops.iam import ROOT

README = (ROOT / "infra" / "README.md").read_text()


def test_every_setting_of_the_control_plane_is_documented() -> None:
    source = (ROOT / "chalicelib" / "settings.py").read_text()
    names = set(re.findall(r'"((?:AETHER|AWS)_[A-Z_]+)"', source)) | {"KUBECONFIG"}
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert missing == []


def test_every_documented_script_exists_and_is_executable() -> None:
    for script in sorted(set(re.findall(r"infra/[\w/.-]+\.sh", README))):
        path = ROOT / script
        assert path.exists(), script
        assert path.stat().st_mode & 0o111, script
