#!/usr/bin/env bash
# What the benchmark needs beyond `make setup`: Debian's rabbitmq-server and nats-server, and the Python
# clients of the peers (goq-devenv's `bench` extra). Installs only what is missing; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
    echo "[bench-setup] no .venv: run 'make setup' first" >&2
    exit 1
fi

missing=()
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]] || missing+=(nats-server)
if (( ${#missing[@]} )); then
    echo "[bench-setup] installing ${missing[*]} with apt"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    # The benchmark runs its own broker on a free port: keep the package from starting the system service
    # (policy-rc.d answering 101 while installing, where no policy is in place already).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod 755 /usr/sbin/policy-rc.d
        trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    if [[ -d /run/systemd/system ]]; then
        $sudo systemctl disable --now rabbitmq-server nats-server 2>/dev/null || true
    elif [[ -x /etc/init.d/rabbitmq-server ]]; then
        $sudo service rabbitmq-server stop >/dev/null 2>&1 || true
        $sudo update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
    fi
fi

if ! .venv/bin/python -c "import aio_pika, pika, nats, uvloop, matplotlib" 2>/dev/null; then
    echo "[bench-setup] installing the peers' Python clients and matplotlib (the bench extra)"
    .venv/bin/pip install -q -e "./devenv[bench]"
fi
