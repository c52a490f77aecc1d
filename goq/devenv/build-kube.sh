#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager (Kubernetes v1.20.2) from Debian 12's source
# package, and fetch etcd from Debian 12's binary package, into a cache outside the work tree.
#
# Why from source: no package registry ships a kube-apiserver binary, but Debian's `kubernetes` source
# package is the complete upstream tree with vendor/, so it builds offline. The toolchain is Go 1.15
# from Debian 11 (Go >= 1.18 breaks the vendored reflect2 v1.0.1).
#
# The mirror is taken from the machine's own apt configuration; apt runs with a private configuration
# so that the machine's sources are never edited. A second run finds the binaries and does nothing.
#
# Usage: goq-dev build-kube, or bash goq/devenv/build-kube.sh (prints the bin directory on its last line)
# Env:   GOQ_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/goq)
set -euo pipefail

KUBE_VERSION=v1.20.2
KUBE_SRC_PKG="kubernetes=1.20.5+really1.20.2-1.1+deb12u1"
CACHE="${GOQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/goq}"
BIN="$CACHE/kube-$KUBE_VERSION/bin"
NEEDED=(kube-apiserver kube-controller-manager etcd)

log() { printf '[build-kube] %s\n' "$*" >&2; }

have_all() {
  local b
  for b in "${NEEDED[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if have_all; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

# The mirror of the main Debian archive, read from this machine's apt configuration.
debian_mirror() {
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # deb822: the URIs line of the stanza whose suites are the plain release (not -security).
    uri=$(awk '
      /^URIs:/   { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-security$/ && u != "") { print u; exit } }
    ' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [[ -n "$uri" ]] || { log "cannot find a Debian mirror in the apt configuration"; exit 1; }
  echo "${uri%/}"
}

need_tools() {
  local missing=()
  command -v make >/dev/null || missing+=(make)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

need_tools
MIRROR=$(debian_mirror)
WORK="$CACHE/kube-build.$$"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/dl"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$WORK/apt/sources.list" <<SRC
deb-src [signed-by=$KEYRING] $MIRROR bookworm main
deb [signed-by=$KEYRING] $MIRROR bookworm main
deb [signed-by=$KEYRING] $MIRROR bullseye main
SRC
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$WORK/apt/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$WORK/apt/lists"
  -o "Dir::Cache=$WORK/apt/cache"
  -o "APT::Get::List-Cleanup=0"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
log "reading package lists (private apt configuration)"
apt-get "${APT_OPTS[@]}" update -qq

cd "$WORK/dl"
log "fetching the kubernetes source package, Go 1.15 and etcd"
apt-get "${APT_OPTS[@]}" source --download-only -qq "$KUBE_SRC_PKG"
apt-get "${APT_OPTS[@]}" download -qq golang-1.15-go golang-1.15-src etcd-server

log "unpacking"
mkdir -p "$WORK/go" "$WORK/etcd"
for deb in golang-1.15-*.deb; do dpkg-deb -x "$deb" "$WORK/go"; done
dpkg-deb -x etcd-server_*.deb "$WORK/etcd"
dpkg-source --no-check -x kubernetes_*.dsc "$WORK/src" >/dev/null

export GOROOT="$WORK/go/usr/lib/go-1.15"
export PATH="$GOROOT/bin:$PATH"
export GOPATH="$WORK/gopath" GOCACHE="$WORK/gocache"
export CGO_ENABLED=0 GOFLAGS=-mod=vendor
# No .git in a source package: tell the build its version, so the server reports v1.20.2.
export KUBE_GIT_VERSION="$KUBE_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean

log "building kube-apiserver and kube-controller-manager with $(go version) (about 7 minutes on 2 cores)"
start=$(date +%s)
make -C "$WORK/src" WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$WORK/build.log" 2>&1 || {
  tail -n 40 "$WORK/build.log" >&2
  log "build failed"
  exit 1
}
log "built in $(($(date +%s) - start)) s"

mkdir -p "$BIN.tmp"
for b in kube-apiserver kube-controller-manager; do
  install -m 0755 "$(find "$WORK/src/_output" -type f -name "$b" | head -n 1)" "$BIN.tmp/$b"
done
install -m 0755 "$WORK/etcd/usr/bin/etcd" "$BIN.tmp/etcd"
rm -rf "$BIN"
mv "$BIN.tmp" "$BIN"
log "cached: $BIN"
echo "$BIN"
