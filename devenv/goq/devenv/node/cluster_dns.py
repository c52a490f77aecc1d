"""The node's cluster DNS add-on: ``A`` records for the cluster's Services, from the API server; ours.

Why ours: a cluster's DNS is CoreDNS, which neither Debian 12 nor any registry reachable here ships, and
no Debian DNS server (dnsmasq, unbound, bind9) reads Services from the Kubernetes API; feeding one from
the API would take a program of this size anyway. It answers what GoQ and Kubernetes clients ask:

- ``<service>.<namespace>.svc.<domain>``: the ClusterIP, or for a headless Service the addresses of its
  ready endpoints (its Endpoints' ``addresses``; ``notReadyAddresses`` are left out, as CoreDNS does);
- ``<hostname>.<service>.<namespace>.svc.<domain>`` for endpoints that carry a hostname (StatefulSets).

Every other name is NXDOMAIN, at once: nothing is forwarded, the node reaches nothing outside the machine.
It keeps a copy of all Services and Endpoints, listed every ``POLL`` seconds (``list`` is what the
bootstrap ClusterRole ``system:kube-dns`` grants; ``RealNode`` binds its user, ``goq:cluster-dns``, to it).

It runs as a daemon of the node (``python -m goq.devenv.node.cluster_dns``), in the node's network
namespace, on the node's own address, port 53, which the kubelet's ``clusterDNS`` names; like NodeLocal
DNSCache's node address, it needs no Service of its own nor kube-proxy in the path.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

from goq.devenv.node.dns_server import DnsServer

log = logging.getLogger("goq.devenv.node.cluster_dns")

POLL: Final = 1.0
"""Seconds between listings: how long a new ready pod may be missing from its Service's answer."""


def records(services: dict[str, Any], endpoints: dict[str, Any], domain: str) -> dict[str, list[str]]:
    """Names (lower case, no final dot) to IPv4 addresses, from a listing of Services and of Endpoints."""
    ready: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in endpoints.get("items") or []:
        meta = item["metadata"]
        addresses = [a for subset in item.get("subsets") or [] for a in subset.get("addresses") or []]
        ready[(meta["namespace"], meta["name"])] = addresses
    found: dict[str, list[str]] = {}
    for item in services.get("items") or []:
        meta, spec = item["metadata"], item.get("spec", {})
        if spec.get("type") == "ExternalName":
            continue
        name = f"{meta['name']}.{meta['namespace']}.svc.{domain}".lower()
        cluster_ip = spec.get("clusterIP") or "None"
        addresses = ready.get((meta["namespace"], meta["name"]), [])
        if cluster_ip != "None":
            found[name] = [cluster_ip] if ":" not in cluster_ip else []
            continue
        found[name] = sorted({a["ip"] for a in addresses if ":" not in a["ip"]})
        for address in addresses:
            if address.get("hostname"):
                found.setdefault(f"{address['hostname']}.{name}".lower(), []).append(address["ip"])
    return found


class ApiListing:
    """Lists Services and Endpoints of every namespace as ``USER``, with a client certificate."""

    def __init__(self, url: str, ca: Path, cert: Path, key: Path) -> None:
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(cert), str(key))
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.context)
        )

    def get(self, path: str) -> dict[str, Any]:
        with self.opener.open(f"{self.url}{path}", timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result


async def serve(listing: ApiListing, host: str, port: int, domain: str) -> None:
    """Answer on ``host:port`` from a copy refreshed every ``POLL`` seconds, until SIGTERM or SIGINT."""
    table: dict[str, list[str]] = {}
    server = DnsServer(table.get, host, port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    started = False
    while not stopped.is_set():
        try:
            services = await asyncio.to_thread(listing.get, "/api/v1/services")
            endpoints = await asyncio.to_thread(listing.get, "/api/v1/endpoints")
            fresh = records(services, endpoints, domain)
            table.clear()
            table.update(fresh)
            if not started:  # serve only once the first listing is in: never a false NXDOMAIN
                await server.start()
                started = True
                log.info("cluster DNS for %s serving on %s:%d (%d names)", domain, host, server.port, len(table))
        except (OSError, urllib.error.URLError, ValueError) as exc:
            log.warning("listing Services and Endpoints failed (the last copy keeps answering): %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), POLL)
    if started:
        await server.stop()


def main(argv: list[str]) -> int:
    """``python -m goq.devenv.node.cluster_dns --api URL --ca F --cert F --key F --listen HOST``."""
    parser = argparse.ArgumentParser(prog="goq.devenv.node.cluster_dns", description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API server's URL")
    parser.add_argument("--ca", type=Path, required=True, help="the CA of the API server's certificate")
    parser.add_argument("--cert", type=Path, required=True, help="the client certificate (user goq:cluster-dns)")
    parser.add_argument("--key", type=Path, required=True, help="its key")
    parser.add_argument("--listen", required=True, help="the address to answer on (port 53)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--domain", default="cluster.local")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(ApiListing(args.api, args.ca, args.cert, args.key), args.listen, args.port, args.domain))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
