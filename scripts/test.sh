#!/usr/bin/env bash
# Everything CI checks, in one command: lint, format, types, import contracts, Dockerfile lint, then the whole test
# suite (unit, integration against a real mongod and kube-apiserver, end to end). Arguments go to pytest.
# Every gate runs even when an earlier one fails, so one run shows every problem.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "no .venv: run 'make setup' first" >&2; exit 1; }

failed=()
gate() {
  local name=$1
  shift
  printf '\n== %s\n' "$name"
  "$@" || failed+=("$name")
}
gate "ruff check" .venv/bin/ruff check .
gate "ruff format" .venv/bin/ruff format --check .
gate "mypy" bash scripts/typecheck.sh
gate "import contracts" bash scripts/lint-imports.sh
gate "hadolint" .venv/bin/hadolint Dockerfile.operator Dockerfile.sidecar
gate "pytest" .venv/bin/pytest "$@"

if ((${#failed[@]})); then
  printf '\nFAILED gates: %s\n' "${failed[*]}"
  exit 1
fi
printf '\nall gates passed\n'
