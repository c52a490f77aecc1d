"""Shell completion of names, as kubectl completes them: namespaces, GoQueues, pods, contexts, poisoned messages.

click calls these while the shell asks (``_GOQCTL_COMPLETE``), after parsing the words typed so far, so
``--kubeconfig``, ``--context``, ``-n`` and ``--sidecar`` given earlier on the line are in ``Options`` and
choose the cluster or sidecar asked, as they would for the command. A completion is typed at a prompt: it
must answer at once and never print. So every lookup gives up after ``COMPLETION_TIMEOUT``, and any failure
(no kubeconfig, no API server, a 403, no sidecar) offers nothing rather than a message in the user's shell.

Poisoned messages (``poison show|redrive`` ids, ``--peer``) are asked of a sidecar reached directly
(``--sidecar``, ``$GOQ_SIDECAR`` or the default address); with ``--identity`` they are not completed, since
that would open a port-forward through the API server at every Tab.
"""

import asyncio
import contextlib
import io
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    from goq.cli.goqctl.app import Options
    from goq.cli.goqctl.kube import Cluster
    from goq.client import Poisoned

COMPLETION_TIMEOUT: Final = 2.0
"""Seconds one completion may take, the kubeconfig's API server or the sidecar included."""

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _options(ctx: click.Context) -> "Options":
    from goq.cli.goqctl.app import Options

    return ctx.find_object(Options) or Options()


def _offer(names: Iterable[str | tuple[str, str]], incomplete: str) -> list[CompletionItem]:
    """The names that start with what was typed, sorted, once each; a pair is (name, description)."""
    items = {n if isinstance(n, str) else n[0]: None if isinstance(n, str) else n[1] for n in names}
    return [CompletionItem(name, help=items[name]) for name in sorted(items) if name.startswith(incomplete)]


def _quietly(complete: Completer) -> Completer:
    """``complete``, with its failures and anything a library would print (warnings, log records) swallowed."""

    def guarded(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                return complete(ctx, param, incomplete)
        except Exception:  # whatever went wrong, a prompt gets no completion rather than a traceback
            return []

    return guarded


def _from_cluster(lookup: Callable[["Cluster", "Options"], Awaitable[Iterable[str]]]) -> Completer:
    """A completer offering what ``lookup`` finds through the kubeconfig the line names."""

    @_quietly
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        from goq.cli.goqctl.kube import connect

        opts = _options(ctx)

        async def ask() -> list[str]:
            async with connect(opts.kube) as cluster:
                return list(await lookup(cluster, opts))

        return _offer(asyncio.run(asyncio.wait_for(ask(), COMPLETION_TIMEOUT)), incomplete)

    return complete


async def _namespaces(cluster: "Cluster", _: "Options") -> list[str]:
    return await cluster.namespaces()


async def _identities(cluster: "Cluster", _: "Options") -> list[str]:
    return [q["metadata"]["name"] for q in await cluster.goqueues(cluster.scope)]


async def _pods(cluster: "Cluster", opts: "Options") -> list[str]:
    return [p["metadata"]["name"] for p in await cluster.pods(cluster.scope, opts.identity)]


async def _destinations(cluster: "Cluster", _: "Options") -> list[str]:
    """Every GoQueue as ``<identity>`` (this namespace's) and as ``<identity>.<namespace>`` (any namespace's)."""
    found = []
    for queue in await cluster.goqueues(None):
        name, namespace = queue["metadata"]["name"], queue["metadata"]["namespace"]
        found.append(f"{name}.{namespace}")
        if namespace == cluster.namespace:
            found.append(name)
    return found


namespaces = _from_cluster(_namespaces)
"""``-n/--namespace``: the cluster's namespaces."""
identities = _from_cluster(_identities)
"""``--identity`` and ``status IDENTITY``: the GoQueues of the namespace (``-n``, else the context's)."""
pods = _from_cluster(_pods)
"""``--pod``: the GoQ pods of the namespace, of ``--identity`` if given."""
destinations = _from_cluster(_destinations)
"""``send TO``: every GoQueue, by name in this namespace and as ``<identity>.<namespace>``."""


@_quietly
def contexts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``--context``: the kubeconfig's contexts (the file only, no server)."""
    from goq.cli.goqctl.kube import contexts as kube_contexts

    return _offer(kube_contexts(_options(ctx).kube), incomplete)


def _poisoned(ctx: click.Context) -> list["Poisoned"]:
    """The sidecar's poison queue (its newest entries), if the sidecar is reached directly."""
    from goq.cli.goqctl.app import FILTERED_SCAN
    from goq.cli.goqctl.targets import DEFAULT_SIDECAR, Target

    opts = _options(ctx)
    if Target(opts.sidecar, opts.identity, opts.pod, opts.via).by_identity:
        return []
    from goq.client import Client

    with Client(opts.sidecar or os.environ.get("GOQ_SIDECAR") or DEFAULT_SIDECAR, timeout=COMPLETION_TIMEOUT) as client:
        return client.poisoned(FILTERED_SCAN)


@_quietly
def poisoned_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``poison show|redrive ID``: the ids in the poison queue, each described by its peer and reason."""
    typed = ctx.params.get(param.name or "")
    given = set(typed) if isinstance(typed, tuple | list) else set()  # redrive's ids typed before this one
    return _offer(
        ((e.id, f"{e.peer} {e.reason}") for e in _poisoned(ctx) if e.id not in given),
        incomplete,
    )


@_quietly
def poisoned_peers(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``--peer``: the peers of the messages in the poison queue, as ``<identity>.<namespace>`` and ``<identity>``."""
    peers = {e.peer for e in _poisoned(ctx)}
    return _offer(peers | {p.partition(".")[0] for p in peers}, incomplete)
