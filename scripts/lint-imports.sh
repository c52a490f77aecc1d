#!/usr/bin/env bash
# The import graph's contracts ([tool.importlinter] in pyproject.toml): layers, independence of the components,
# and where MongoDB may be imported. import-linter reads the namespace package goq from every folder the
# installed distributions put on sys.path (editable installs: client/, sidecar/, operator/, webhook/, devenv/).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/lint-imports --no-cache --no-logo "$@"
