#!/usr/bin/env bash
# mypy (strict) on every distribution's part of the namespace package goq, as the files are: pyproject.toml's
# mypy_path names the folders that are goq's roots (client/, sidecar/, operator/, webhook/, devenv/).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/mypy --cache-dir .cache/mypy client/goq sidecar/goq operator/goq webhook/goq devenv/goq
