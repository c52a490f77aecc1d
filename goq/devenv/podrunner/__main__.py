"""``python -m goq.devenv.podrunner``: the local pod runner as a process (``goq-dev up`` and tests start it).

Once the node is registered and the DNS responder serves, it writes ``<dir>/runner.json`` (its DNS
address and node name). SIGTERM or SIGINT stops every container it started; the pods stay in the API,
as they would on a node that went away.
"""

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from goq.devenv.errors import DevEnvError
from goq.devenv.podrunner import volumes
from goq.devenv.podrunner.containers import Backoff
from goq.devenv.podrunner.dns import DnsServer
from goq.devenv.podrunner.images import Images, default_examples_dir
from goq.devenv.podrunner.pods import NodeContext
from goq.devenv.podrunner.running import PodRunner

log = logging.getLogger("goq.devenv.podrunner")


def _pairs(items: list[str]) -> dict[str, str]:
    result = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise DevEnvError(f"--sidecar-env wants NAME=VALUE, got {item!r}")
        result[name] = value
    return result


async def serve(args: argparse.Namespace) -> None:
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(args.kubeconfig), client_configuration=configuration)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    args.dir.mkdir(parents=True, exist_ok=True)
    async with k8s.ApiClient(configuration) as api:
        context = NodeContext(
            images=Images(args.examples),
            dns_server="",
            backoff=Backoff(initial=args.backoff, maximum=args.max_backoff),
            sidecar_env=_pairs(args.sidecar_env),
            volume_sync=args.volume_sync,
        )
        runner = PodRunner(api, args.node, args.dir, context, cluster_domain=args.cluster_domain)
        dns = DnsServer(runner.lookup, port=args.dns_port)
        await dns.start()
        runner.context = dataclasses.replace(context, dns_server=dns.address)
        try:
            await runner.register_node()
            ready = {"node": args.node, "dns": dns.address, "directory": str(args.dir)}
            (args.dir / "runner.json").write_text(json.dumps(ready))
            log.info("pod runner for node %s ready; DNS for %s at %s", args.node, args.cluster_domain, dns.address)
            await runner.run(stop)
        finally:
            await dns.stop()
            log.info("pod runner stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m goq.devenv.podrunner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig of the local control plane")
    parser.add_argument("--dir", type=Path, required=True, help="pod folders, container logs, runner.json")
    parser.add_argument("--node", default="goq-local", help="the Node to register and run pods for")
    parser.add_argument("--dns-port", type=int, default=0, help="port of the DNS responder (0: a free one)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--examples", type=Path, default=default_examples_dir(), help="where example programs are")
    parser.add_argument("--backoff", type=float, default=1.0, help="first restart delay after a crash, seconds")
    parser.add_argument("--max-backoff", type=float, default=30.0, help="longest restart delay, seconds")
    parser.add_argument(
        "--volume-sync",
        type=float,
        default=volumes.SYNC_INTERVAL,
        help="seconds between refreshes of Secret and ConfigMap volumes (a kubelet's: about a minute)",
    )
    parser.add_argument(
        "--sidecar-env", action="append", default=[], metavar="NAME=VALUE", help="extra env for GoQ sidecars"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pod-runner: %(message)s", stream=sys.stderr)
    try:
        asyncio.run(serve(args))
    except DevEnvError as exc:
        print(f"pod runner: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
