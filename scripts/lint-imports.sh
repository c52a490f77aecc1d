#!/usr/bin/env bash
# The import graph's contracts ([tool.importlinter] in pyproject.toml): layers, independence of the components,
# and where MongoDB may be imported.
#
# import-linter finds goq.* through Python's import system and walks the folders it finds; setuptools' editable
# hook that maps operator/, sidecar/ and webhook/ into goq.* is not a folder, so this stages a tree of symlinks
# with the installed layout (scripts/stage-goq.sh) and runs from inside it, where `goq` is that tree.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=.cache/imports
bash scripts/stage-goq.sh "$stage"
cd "$stage"
exec ../../.venv/bin/lint-imports --no-cache --no-logo ../../pyproject.toml "$@"
