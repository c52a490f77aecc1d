#!/usr/bin/env bash
# Set up a fresh machine for GoQ development: the system packages the builds need, a virtual
# environment (.venv) with GoQ and its dev tools, and the Kubernetes control-plane binaries, built
# once into the cache outside the work tree (later runs find them and take seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { say "GoQ needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"; exit 1; }

# System packages: make and rsync for the Kubernetes build, dpkg-dev to unpack its source package.
missing=()
pairs=(make:make rsync:rsync dpkg-source:dpkg-dev)
# The real node (opt-in, GOQ_REAL_NODE=1): gcc builds its pause binary, static, from the Kubernetes tree;
# debootstrap makes the Python base image and buildah builds GoQ's Dockerfiles on it (no daemon).
[[ "${GOQ_REAL_NODE:-}" == 1 ]] && pairs+=(gcc:gcc debootstrap:debootstrap buildah:buildah)
for pair in "${pairs[@]}"; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "please install: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  python3 -m venv .venv
fi
say "installing GoQ (editable) with the dev extra into .venv"
# The machine's pip configuration may name local indexes that do not exist; their warnings are noise.
.venv/bin/pip install -q -e '.[dev]' 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

say "control-plane binaries (built once, a few minutes; progress below)"
say "control-plane binaries in $(.venv/bin/goq-dev build-kube)"
if [[ "${GOQ_REAL_NODE:-}" == 1 ]]; then
  say "the real node's binaries and runtime, GoQ's images (built once, about 7 minutes; progress below)"
  say "node binaries, then GoQ's images: $(.venv/bin/goq-dev node build | tr '\n' ' ')"
fi
say "done. Run the tests with: make test"
