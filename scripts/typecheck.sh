#!/usr/bin/env bash
# mypy (strict) on every package, under the names they install as.
#
# mypy cannot follow setuptools' editable-install import hook that maps operator/, sidecar/ and
# webhook/ to goq.*, so this stages a tree of symlinks with that layout (scripts/stage-goq.sh) and
# checks it; paths in the report are mapped back to the real files.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=.cache/typecheck
bash scripts/stage-goq.sh "$stage"
set +e
MYPYPATH="$stage" .venv/bin/mypy --cache-dir .cache/mypy -p goq 2>&1 |
  sed -E "s#^$stage/goq/(operator|sidecar|webhook)/#\1/#; s#^$stage/goq/#goq/#"
status=${PIPESTATUS[0]}
exit "$status"
