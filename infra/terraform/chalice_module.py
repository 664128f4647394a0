"""Fit the Terraform module ``chalice package`` writes (``./chalice``) to the root module.

- chalice 1.34 caps its module at Terraform < 1.4.0; nothing in it needs that.
- The functions' environment comes from ``.chalice/config.json``, fixed when packaged; what
  only Terraform knows (the Cognito user pool's issuer and the CLI's client id) is merged in
  from the module variable ``extra_environment``.

    python infra/terraform/chalice_module.py infra/terraform/chalice/chalice.tf.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def patch(module: dict[str, Any]) -> dict[str, Any]:
    module["terraform"]["required_version"] = ">= 0.12.26"
    module.setdefault("variable", {})["extra_environment"] = {
        "type": "map(string)",
        "description": "Merged into every function's environment (AETHER_OIDC_*).",
        "default": {},
    }
    for function in module["resource"]["aws_lambda_function"].values():
        fixed = function["environment"]["variables"]
        if isinstance(fixed, dict):
            literal = json.dumps(json.dumps(fixed, sort_keys=True))
            function["environment"]["variables"] = (
                f"${{merge(jsondecode({literal}), var.extra_environment)}}"
            )
    return module


def main() -> None:
    path = Path(sys.argv[1])
    path.write_text(json.dumps(patch(json.loads(path.read_text())), indent=2))


if __name__ == "__main__":
    main()
