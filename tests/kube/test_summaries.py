"""How a crash loop is summed up: by the line of the process's output that says what broke."""

from __future__ import annotations

import pytest

from chalicelib.kube import first_error_line

MISSING_MODULE = """\
> app@1.0.0 start
> node dist/index.js

node:internal/modules/cjs/loader:1228
  throw err;
  ^

Error: Cannot find module '/app/dist/index.js'
    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15)
    at node:internal/main/run_main_module:28:49 {
  code: 'MODULE_NOT_FOUND',
  requireStack: []
}

Node.js v24.22.3
npm error code 1
npm error command failed
"""


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (MISSING_MODULE, "Error: Cannot find module '/app/dist/index.js'"),
        (
            "/app/server.js:3\nthrow new TypeError('no config');\n^\n\nTypeError: no config\n",
            "TypeError: no config",
        ),
        (
            "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express'\n    at x\n",
            "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express'",
        ),
        (
            '> start\nnpm error Missing script: "start"\nnpm error x\n',
            'npm error Missing script: "start"',
        ),
        ("> start\nsh: 1: nest: not found\n", "sh: 1: nest: not found"),  # no error word: last
        ("", ""),
    ],
)
def test_the_first_error_line_is_quoted(output: str, line: str) -> None:
    assert first_error_line(output) == line
