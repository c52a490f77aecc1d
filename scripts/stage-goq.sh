#!/usr/bin/env bash
# Stage a tree of symlinks with the layout the packages install as: goq/ with operator/, sidecar/ and webhook/
# inside it (setuptools maps them there through package_dir, an import hook that tools reading the source
# cannot follow). Usage: scripts/stage-goq.sh DIRECTORY (relative to the repository; emptied first).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: stage-goq.sh DIRECTORY}
up=$(realpath -m --relative-to="$stage/goq" .)
rm -rf "$stage" && mkdir -p "$stage/goq"
for entry in goq/*; do ln -s "$up/$entry" "$stage/goq/$(basename "$entry")"; done
for component in operator sidecar webhook; do ln -s "$up/$component" "$stage/goq/$component"; done
