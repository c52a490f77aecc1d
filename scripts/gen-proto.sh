#!/usr/bin/env bash
# Generate the Python code for client/goq/api/v1/*.proto (messages, gRPC stubs, type stubs) beside them.
# Usage: scripts/gen-proto.sh [OUTPUT_ROOT]   (default: client/, the client distribution; a test generates into a temp
# directory and compares, so that the committed code is always current)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-client}
mkdir -p "$out"
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m grpc_tools.protoc -I client \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  client/goq/api/v1/*.proto
# envelope.proto declares no service: its empty gRPC module would only be noise.
rm -f "$out"/goq/api/v1/envelope_pb2_grpc.py "$out"/goq/api/v1/envelope_pb2_grpc.pyi
