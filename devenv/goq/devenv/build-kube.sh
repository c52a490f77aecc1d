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
# With --node it also builds what a real node needs (see goq/devenv/node/): kubelet, kube-proxy and
# kube-scheduler from the same tree, the pause binary from its build/pause/linux/pause.c (gcc -static),
# and the container runtime from Debian 12's packages (containerd, runc, CNI plugins, iptables with nft
# and their libraries), unpacked with dpkg-deb into runtime/ beside bin/. Only what is missing is built.
#
# Usage: goq-dev build-kube, or bash goq/devenv/build-kube.sh [--node] (prints the bin directory last)
# Env:   GOQ_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/goq)
set -euo pipefail

WITH_NODE=0
case "${1:-}" in
  --node) WITH_NODE=1 ;;
  "") ;;
  *) printf 'usage: %s [--node]\n' "$0" >&2; exit 2 ;;
esac

KUBE_VERSION=v1.20.2
KUBE_SRC_PKG="kubernetes=1.20.5+really1.20.2-1.1+deb12u1"
CACHE="${GOQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/goq}"
BIN="$CACHE/kube-$KUBE_VERSION/bin"
RUNTIME="$CACHE/kube-$KUBE_VERSION/runtime"
GO_BINARIES=(kube-apiserver kube-controller-manager)
# Debian 12 packages of the node's runtime; iptables runs as xtables-nft-multi with these libraries.
# busybox-static is the one program of the node's smallest test image (goq/devenv/node/images.py).
RUNTIME_PKGS=(containerd runc containernetworking-plugins iptables libip4tc2 libip6tc2 libxtables12 libnftnl11
  libmnl0 libnetfilter-conntrack3 libnfnetlink0 busybox-static)
if ((WITH_NODE)); then
  GO_BINARIES+=(kubelet kube-proxy kube-scheduler)
fi

log() { printf '[build-kube] %s\n' "$*" >&2; }

# What is missing, each a list: Go binaries to build, and whether etcd, pause and the runtime are.
MISSING_GO=()
for b in "${GO_BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || MISSING_GO+=("$b"); done
NEED_ETCD=0
[[ -x "$BIN/etcd" ]] || NEED_ETCD=1
NEED_PAUSE=0
NEED_RUNTIME=0
if ((WITH_NODE)); then
  [[ -x "$BIN/pause" ]] || NEED_PAUSE=1
  # .complete lists the unpacked .deb files: a package added to RUNTIME_PKGS unpacks them again.
  for pkg in "${RUNTIME_PKGS[@]}"; do
    grep -q "^\./${pkg}_" "$RUNTIME/.complete" 2>/dev/null || NEED_RUNTIME=1
  done
fi
NEED_SOURCE=0
((${#MISSING_GO[@]} + NEED_PAUSE)) && NEED_SOURCE=1

if ((!NEED_SOURCE && !NEED_ETCD && !NEED_RUNTIME)); then
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
  if ((NEED_PAUSE)); then
    command -v gcc >/dev/null || missing+=(gcc)
    [[ -n "$(gcc -print-file-name=libc.a 2>/dev/null | grep /)" ]] || missing+=(libc6-dev)
  fi
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
mkdir -p "$BIN"
# Each file goes in under a temporary name and is renamed: a reader never sees half a binary.
put() { install -m 0755 "$1" "$BIN/.$2.tmp" && mv -f "$BIN/.$2.tmp" "$BIN/$2"; }

if ((NEED_ETCD)); then
  log "fetching etcd"
  apt-get "${APT_OPTS[@]}" download -qq etcd-server
  mkdir -p "$WORK/etcd"
  dpkg-deb -x etcd-server_*.deb "$WORK/etcd"
  put "$WORK/etcd/usr/bin/etcd" etcd
fi

if ((NEED_RUNTIME)); then
  log "fetching the node's runtime: ${RUNTIME_PKGS[*]}"
  mkdir -p "$WORK/runtime-debs"
  (cd "$WORK/runtime-debs" && apt-get "${APT_OPTS[@]}" download -qq "${RUNTIME_PKGS[@]}")
  rm -rf "$RUNTIME.tmp"
  mkdir -p "$RUNTIME.tmp"
  for deb in "$WORK"/runtime-debs/*.deb; do dpkg-deb -x "$deb" "$RUNTIME.tmp"; done
  (cd "$WORK/runtime-debs" && ls ./*.deb) >"$RUNTIME.tmp/.complete"
  rm -rf "$RUNTIME"
  mv "$RUNTIME.tmp" "$RUNTIME"
  log "runtime in $RUNTIME"
fi

if ((NEED_SOURCE)); then
  log "fetching the kubernetes source package and Go 1.15"
  apt-get "${APT_OPTS[@]}" source --download-only -qq "$KUBE_SRC_PKG"
  apt-get "${APT_OPTS[@]}" download -qq golang-1.15-go golang-1.15-src
  log "unpacking"
  mkdir -p "$WORK/go"
  for deb in golang-1.15-*.deb; do dpkg-deb -x "$deb" "$WORK/go"; done
  dpkg-source --no-check -x kubernetes_*.dsc "$WORK/src" >/dev/null
fi

if ((NEED_PAUSE)); then
  # The sandbox ("pause") container's only process, as upstream builds it: a static C binary.
  log "building pause from build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION="$KUBE_VERSION-goq" -o "$WORK/pause" "$WORK/src/build/pause/linux/pause.c"
  strip "$WORK/pause" 2>/dev/null || true
  put "$WORK/pause" pause
fi

if ((${#MISSING_GO[@]})); then
  export GOROOT="$WORK/go/usr/lib/go-1.15"
  export PATH="$GOROOT/bin:$PATH"
  export GOPATH="$WORK/gopath" GOCACHE="$WORK/gocache"
  export CGO_ENABLED=0 GOFLAGS=-mod=vendor
  # No .git in a source package: tell the build its version, so the server reports v1.20.2.
  export KUBE_GIT_VERSION="$KUBE_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean

  what=""
  for b in "${MISSING_GO[@]}"; do what+=" cmd/$b"; done
  log "building${what//cmd\//} with $(go version) (about 2-4 minutes a binary on 2 cores, niced)"
  start=$(date +%s)
  nice -n 19 make -C "$WORK/src" WHAT="${what# }" >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    log "build failed"
    exit 1
  }
  log "built in $(($(date +%s) - start)) s"
  for b in "${MISSING_GO[@]}"; do
    put "$(find "$WORK/src/_output" -type f -name "$b" | head -n 1)" "$b"
  done
fi
log "cached: $BIN"
echo "$BIN"
