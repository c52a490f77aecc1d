"""goqctl's commands and flags (click): each command a few lines over the modules that do the work.

Flags follow kubectl's habits: ``-o``, ``-n``, ``-A``, ``--identity`` and the other global flags may
come before or after the command (the last one given wins); results go to standard output in the
chosen format, problems to standard error as one ``goqctl: ...`` line. Heavy modules (the gRPC client,
the Kubernetes client, YAML) are imported only by the commands that use them, so ``--help`` and shell
completion stay fast.
"""

import asyncio
import contextlib
import datetime
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from goq.cli.goqctl import completing
from goq.cli.goqctl.errors import EXIT_REFUSED
from goq.cli.goqctl.output import FORMATS, Output, fields
from goq.cli.goqctl.targets import VIAS, Target
from goq.stats_fields import STATS
from goq.version import __version__

if TYPE_CHECKING:
    from goq.cli.goqctl.kube import KubeSettings
    from goq.client import Client

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """The global flags, wherever on the line they were given."""

    output: str = "text"
    sidecar: str | None = None
    identity: str | None = None
    pod: str | None = None
    via: str = "port-forward"
    namespace: str | None = None
    all_namespaces: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    reached: str = ""
    """The sidecar being talked to, for error messages."""

    @property
    def out(self) -> Output:
        return Output(self.output)

    @property
    def kube(self) -> "KubeSettings":
        from goq.cli.goqctl.kube import KubeSettings

        return KubeSettings(self.kubeconfig, self.context, self.namespace, self.all_namespaces)


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value is not False and value != ():
        setattr(ctx.ensure_object(Options), str(param.name), value)
    return value


class _Format(click.Choice):  # type: ignore[type-arg]
    """``-o`` with a hint for the old ``receive --output FILE``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if ctx is not None and ctx.info_name == "receive":
                self.fail(
                    f"{value!r} is not an output format ({', '.join(FORMATS)}); "
                    "to write the payload to a file use --save-to FILE",
                    param,
                    ctx,
                )
            raise


def global_options(*, shown: bool, cluster_shown: bool | None = None) -> Callable[[F], F]:
    """The global flags; on subcommands hidden from ``--help`` (``goqctl --help`` lists them)."""
    kube_shown = shown if cluster_shown is None else cluster_shown
    options = [
        click.option(
            "-o",
            "--output",
            type=_Format(FORMATS),
            callback=_store,
            expose_value=False,
            help="text (default), wide, json or yaml",
        ),
        click.option(
            "--sidecar",
            metavar="HOST:PORT",
            callback=_store,
            expose_value=False,
            hidden=not shown,
            help="the sidecar's application gRPC address (default: $GOQ_SIDECAR or 127.0.0.1:7701)",
        ),
        click.option(
            "--identity",
            callback=_store,
            expose_value=False,
            hidden=not shown,
            shell_complete=completing.identities,
            help="talk to a ready pod of this identity, found through the kubeconfig",
        ),
        click.option(
            "--pod",
            callback=_store,
            expose_value=False,
            hidden=not shown,
            shell_complete=completing.pods,
            help="that pod, by name",
        ),
        click.option(
            "--via",
            type=click.Choice(VIAS),
            callback=_store,
            expose_value=False,
            hidden=not shown,
            help="with --identity: port-forward through the API server (default), or pod-ip (a sidecar on its pod IP)",
        ),
        click.option(
            "-n",
            "--namespace",
            callback=_store,
            expose_value=False,
            hidden=not kube_shown,
            shell_complete=completing.namespaces,
            help="the namespace (default: the kubeconfig context's, else default)",
        ),
        click.option(
            "-A",
            "--all-namespaces",
            is_flag=True,
            default=None,
            callback=_store,
            expose_value=False,
            hidden=not kube_shown,
            help="every namespace (list, status)",
        ),
        click.option(
            "--kubeconfig",
            type=click.Path(dir_okay=False),
            callback=_store,
            expose_value=False,
            hidden=not kube_shown,
            help="the kubeconfig (default: $KUBECONFIG or ~/.kube/config)",
        ),
        click.option(
            "--context",
            callback=_store,
            expose_value=False,
            hidden=not kube_shown,
            shell_complete=completing.contexts,
            help="the kubeconfig context",
        ),
    ]

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def examples(*lines: str) -> str:
    """An epilog of examples that click prints as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


GLOBAL_HINT = "Global flags (--sidecar, --identity, -n, -o ...) may also come after the command: see goqctl --help."


def command(group: click.Group, name: str, help: str, *lines: str, cluster: bool = False) -> Callable[[F], F]:
    """A subcommand with the global flags and its examples; its first sentence is its line in the list."""

    def apply(f: F) -> F:
        wrapped = global_options(shown=False, cluster_shown=cluster)(click.pass_obj(f))
        short = help.split(". ")[0].split(": ")[0].rstrip(".")
        group.command(name, help=help, short_help=short, epilog=examples(*lines) + "\n\n" + GLOBAL_HINT)(wrapped)
        return f

    return apply


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=examples(
        "goqctl send billing '{\"order\": 1}'             # through the sidecar at $GOQ_SIDECAR",
        "goqctl receive --max 10 -o json",
        "goqctl list -A                                  # every GoQueue of the cluster",
        "goqctl -n shop status orders                    # its pods, the worst first",
        "goqctl -n shop --identity orders stats          # a ready pod of orders, through the API server",
        "goqctl poison list --peer billing --older-than 1h",
        "source <(goqctl completion bash)",
    )
    + "\n\nExit codes: 0 done; 1 the sidecar refused (bad message, queue full, unknown id); 2 bad arguments; "
    "3 the sidecar or the cluster could not be reached; 141 the output pipe was closed.",
)
@global_options(shown=True)
@click.version_option(__version__, "--version", prog_name="goqctl", message="%(prog)s %(version)s")
def cli() -> None:
    """Send, receive and inspect GoQ messages through a sidecar, and see GoQ in a cluster."""


@contextlib.contextmanager
def sidecar(opts: Options) -> Iterator["Client"]:
    """A client of the sidecar the flags choose (by address, or by identity through the cluster)."""
    from goq.cli.goqctl.targets import sidecar_address
    from goq.client import Client

    target = Target(opts.sidecar, opts.identity, opts.pod, opts.via)
    # The cluster's settings only for --identity/--pod: they import the Kubernetes client (the extra goq[kube]).
    with sidecar_address(target, opts.kube if target.by_identity else None) as address:
        opts.reached = (
            f"sidecar at {address}" if not target.by_identity else f"sidecar of {target.identity or target.pod}"
        )
        with Client(address, timeout=30.0) as client:
            yield client


# Messages.


@command(
    cli,
    "send",
    'Send a message. TO is "<identity>" or "<identity>.<namespace>"; PAYLOAD is text, \'-\' reads standard input.',
    "goqctl send billing 'hello'",
    "goqctl send billing.shop - < order.json -H kind=order --id order-1",
    "goqctl send billing --file scan.tiff --progress   # over 1 MiB: streamed as a large message",
)
@click.argument("to", shell_complete=completing.destinations)
@click.argument("payload", required=False)
@click.option("--file", type=click.Path(path_type=Path), help="read the payload from a file (over 1 MiB: streamed)")
@click.option("--progress", is_flag=True, help="a progress bar for --file on stderr (default: on a terminal)")
@click.option("--transient", is_flag=True, help="not persistent: kept in memory only")
@click.option("-H", "--header", multiple=True, metavar="NAME=VALUE", help="a header (repeatable)")
@click.option("--id", "message_id", help="idempotency key: the same id is not sent twice")
def send(
    opts: Options,
    to: str,
    payload: str | None,
    file: Path | None,
    progress: bool,
    transient: bool,
    header: tuple[str, ...],
    message_id: str | None,
) -> int:
    from goq.cli.goqctl import messaging

    headers = messaging.parse_headers(header)
    with sidecar(opts) as client:
        receipt = messaging.send(
            client, to, payload, file, persistent=not transient, headers=headers, id=message_id, progress=progress
        )
    opts.out.emit(asdict(receipt), f"{receipt.id} {receipt.state}")
    return 0


@command(
    cli,
    "receive",
    "Receive messages, print them and acknowledge them. "
    "Each is acknowledged after it is printed: a closed pipe leaves it leased.",
    "goqctl receive --wait 30",
    "goqctl receive --max 100 -o json | jq -r .payload | base64 -d",
    "goqctl receive --follow --no-ack",
    "goqctl receive --save-to scan.tiff                # the payload to a file, streamed (large messages)",
)
@click.option("--max", "count", type=int, default=1, show_default=True, help="stop after this many")
@click.option("--wait", type=float, default=5.0, show_default=True, help="seconds to wait for them")
@click.option("-f", "--follow", is_flag=True, help="keep receiving until interrupted")
@click.option("--no-ack", is_flag=True, help="leave them leased: they come back later")
@click.option(
    "--save-to",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="write the payload to FILE (one message)",
)
def receive(opts: Options, count: int, wait: float, follow: bool, no_ack: bool, save_to: Path | None) -> int:
    from goq.cli.goqctl import messaging
    from goq.cli.goqctl.errors import UsageError

    if save_to is not None and count != 1:
        raise UsageError("--save-to writes one payload: use it with --max 1")
    out = opts.out
    with sidecar(opts) as client:
        for message in messaging.receive(client, count, wait, follow, no_ack):
            if save_to is not None:
                messaging.save_payload(client, message, save_to)
            elif message.large:  # it cannot be printed: give it back for a receive with --save-to
                client.nack(message.id, requeue=True)
                click.echo(
                    f"goqctl: {message.id} is a large message ({message.payload_size} bytes): "
                    "receive it with --save-to FILE",
                    err=True,
                )
                return EXIT_REFUSED
            out.emit(messaging.message_json(message), messaging.message_text(message, out.form == "wide"))
            if not no_ack:
                client.ack(message.id)
    return 0


@command(cli, "ack", "Acknowledge leased messages by id.", "goqctl ack 01HX3K9Q 01HX3KA2")
@click.argument("ids", nargs=-1, required=True)
def ack(opts: Options, ids: tuple[str, ...]) -> int:
    with sidecar(opts) as client:
        unknown = client.ack(*ids)
    done = [i for i in ids if i not in unknown]
    opts.out.emit({"acknowledged": done, "unknown": unknown}, "\n".join(f"{i} acknowledged" for i in done))
    for message_id in unknown:
        click.echo(f"goqctl: {message_id}: not leased (unknown or already acknowledged)", err=True)
    return EXIT_REFUSED if unknown else 0


@command(
    cli,
    "nack",
    "Give a leased message back, or send it to the poison queue.",
    "goqctl nack 01HX3K9Q --delay 30",
    "goqctl nack 01HX3K9Q --poison --reason 'bad order'",
)
@click.argument("id")
@click.option("--poison", is_flag=True, help="send it to the poison queue instead of requeueing")
@click.option("--delay", type=float, default=0.0, help="seconds before it is handed out again")
@click.option("--reason", default="", help="why (kept with a poisoned message)")
def nack(opts: Options, id: str, poison: bool, delay: float, reason: str) -> int:
    with sidecar(opts) as client:
        client.nack(id, requeue=not poison, delay=delay, reason=reason)
    opts.out.emit({"id": id, "poisoned": poison}, f"{id} {'poisoned' if poison else 'requeued'}")
    return 0


BYTE_FIGURES = frozenset(f.json_name for f in STATS if f.kind == "bytes")
"""Shown as sizes (``512.0 MiB``); ``-o json`` keeps every figure a number."""


@command(
    cli,
    "stats",
    "Queue depths and totals of one sidecar.",
    "goqctl stats",
    "goqctl stats -o json",
    "goqctl -n shop --identity orders stats",
)
def stats(opts: Options) -> int:
    from goq.cli.goqctl.humanize import size

    with sidecar(opts) as client:
        figures = client.stats().to_dict()
    shown = {k: size(int(v)) if k in BYTE_FIGURES else v for k, v in figures.items()}
    opts.out.emit(figures, fields(shown))
    return 0


# The poison queue.


@cli.group(
    epilog=examples(
        "goqctl poison list --reason max-attempts", "goqctl poison redrive --all --peer billing --newer-than 1h"
    )
)
def poison() -> None:
    """The poison queue: list, show and redrive poisoned messages.\f"""


def poison_filters(f: F) -> F:
    for option in reversed(
        [
            click.option(
                "--peer",
                multiple=True,
                shell_complete=completing.poisoned_peers,
                help="the other end: <identity> (any namespace) or <identity>.<namespace>; repeatable",
            ),
            click.option(
                "--reason", multiple=True, help="a reason such as max-attempts, max-age, forbidden; repeatable"
            ),
            click.option(
                "--direction", type=click.Choice(["outbound", "inbound"]), help="poisoned on the way out or in"
            ),
            click.option(
                "--older-than", metavar="DURATION", help="poisoned at least this long ago: 30s, 5m, 1h, 1h30m"
            ),
            click.option("--newer-than", metavar="DURATION", help="poisoned less than this long ago"),
        ]
    ):
        f = option(f)
    return f


def _filter(
    peer: tuple[str, ...], reason: tuple[str, ...], direction: str | None, older: str | None, newer: str | None
) -> Any:
    from goq.cli.goqctl.poisons import PoisonFilter

    return PoisonFilter.parse(peer, reason, direction, older, newer)


FILTERED_SCAN = 1000
"""With a filter, the newest this many entries are searched (the sidecar's most per request)."""


@command(
    poison,
    "list",
    "List poisoned messages. The newest first, filtered by peer, reason, direction and age.",
    "goqctl poison list",
    "goqctl poison list --peer billing --reason max-attempts",
    "goqctl poison list --older-than 1h -o wide",
    "goqctl poison list -o json | jq -r '.[].id'",
)
@click.option(
    "--limit", type=click.IntRange(1, FILTERED_SCAN), default=50, show_default=True, help="show at most this many"
)
@poison_filters
def poison_list(
    opts: Options,
    limit: int,
    peer: tuple[str, ...],
    reason: tuple[str, ...],
    direction: str | None,
    older_than: str | None,
    newer_than: str | None,
) -> int:
    from goq.cli.goqctl.poisons import poison_table, poisoned_json

    selected = _filter(peer, reason, direction, older_than, newer_than)
    with sidecar(opts) as client:
        entries = client.poisoned(FILTERED_SCAN if selected.active else limit)
    now = time.time()
    shown = selected.select(entries, now)[:limit]
    opts.out.emit([poisoned_json(e, payload=False) for e in shown], poison_table(shown, now, selected.active))
    return 0


@command(poison, "show", "One poisoned message, payload and headers included.", "goqctl poison show 01HX3K9Q")
@click.argument("id", shell_complete=completing.poisoned_ids)
def poison_show(opts: Options, id: str) -> int:
    from goq.cli.goqctl.poisons import poison_details, poisoned_json

    with sidecar(opts) as client:
        found = [e for e in client.poisoned(FILTERED_SCAN) if e.id == id]
    if not found:
        click.echo(f"goqctl: {id}: not in the poison queue", err=True)
        return EXIT_REFUSED
    opts.out.emit(poisoned_json(found[0], payload=True), fields(poison_details(found[0], time.time())))
    return 0


@command(
    poison,
    "redrive",
    "Hand poisoned messages back for delivery. By id, or --all of those the filters select.",
    "goqctl poison redrive 01HX3K9Q 01HX3KA2",
    "goqctl poison redrive --all --peer billing --newer-than 1h",
    "goqctl poison redrive --all --reason max-attempts --dry-run",
)
@click.argument("ids", nargs=-1, shell_complete=completing.poisoned_ids)
@click.option("--all", "every", is_flag=True, help="every message the filters select (up to --limit)")
@click.option(
    "--limit",
    type=click.IntRange(1, FILTERED_SCAN),
    default=FILTERED_SCAN,
    show_default=True,
    help="with --all: at most this many",
)
@click.option("--dry-run", is_flag=True, help="print what would be redriven, change nothing")
@poison_filters
def poison_redrive(
    opts: Options,
    ids: tuple[str, ...],
    every: bool,
    limit: int,
    dry_run: bool,
    peer: tuple[str, ...],
    reason: tuple[str, ...],
    direction: str | None,
    older_than: str | None,
    newer_than: str | None,
) -> int:
    from goq.cli.goqctl.errors import UsageError

    selected = _filter(peer, reason, direction, older_than, newer_than)
    if every == bool(ids):
        raise UsageError("poison redrive takes message ids or --all, not both and not neither")
    if ids and selected.active:
        raise UsageError(
            "--peer, --reason, --direction, --older-than and --newer-than select for --all; with ids, drop them"
        )
    with sidecar(opts) as client:
        chosen = list(ids)
        if every:
            chosen = [e.id for e in selected.select(client.poisoned(FILTERED_SCAN), time.time())[:limit]]
        if dry_run:
            opts.out.emit({"wouldRedrive": chosen}, "\n".join(f"{i} would be redriven" for i in chosen))
            return 0
        handed_back = client.redrive(chosen) if chosen else []
    missing = [i for i in chosen if i not in handed_back]
    text = "\n".join(f"{i} redriven" for i in handed_back) or ("nothing to redrive" if every else "")
    opts.out.emit({"redriven": handed_back, "notFound": missing}, text)
    for message_id in missing:
        click.echo(f"goqctl: {message_id}: not in the poison queue", err=True)
    return EXIT_REFUSED if missing else 0


# The cluster.


@command(
    cli,
    "list",
    "List the GoQueues. "
    "Per identity: ready pods, queue depths, totals and health, from the status the operator writes.",
    "goqctl list",
    "goqctl list -A -o wide",
    "goqctl list -n shop -o yaml",
    cluster=True,
)
def list_(opts: Options) -> int:
    from goq.cli.goqctl import cluster, kube

    async def fetch() -> tuple[list[dict[str, Any]], bool]:
        async with kube.connect(opts.kube) as api:
            return await api.goqueues(api.scope), api.scope is None

    queues, every = asyncio.run(fetch())
    now = datetime.datetime.now(datetime.UTC)
    opts.out.emit([cluster.queue_json(q) for q in queues], cluster.list_table(queues, now, every))
    return 0


@command(
    cli,
    "status",
    "Show identities and their pods. "
    "Per identity: its figures and health, then its pods, the worst first with the reasons.",
    "goqctl status                 # every identity of the namespace",
    "goqctl -n shop status orders",
    "goqctl status -A -o json",
    cluster=True,
)
@click.argument("identities", nargs=-1, shell_complete=completing.identities)
def status(opts: Options, identities: tuple[str, ...]) -> int:
    from goq.cli.goqctl import cluster, kube

    wanted = set(identities) | ({opts.identity} if opts.identity else set())

    async def fetch() -> list[dict[str, Any]]:
        async with kube.connect(opts.kube) as api:
            queues = await api.goqueues(api.scope)
            pods = await api.pods(api.scope)
            return cluster.statuses(queues, pods, api.namespace, wanted)

    documents = asyncio.run(fetch())
    now = datetime.datetime.now(datetime.UTC)
    out = opts.out
    if out.structured:
        out.emit(documents)
    elif not documents:
        out.emit([], "no GoQueue and no GoQ pod here")
    else:
        out.emit(documents, "\n\n".join(cluster.status_text(d, now, out.form == "wide") for d in documents))
    missing = [d for d in documents if d["health"] == "NoGoQueue" and d["identity"] in wanted]
    return EXIT_REFUSED if missing else 0


# Completion.

SHELLS = ("bash", "zsh")


@cli.command(
    "completion",
    short_help="Print the completion script for bash or zsh",
    epilog=examples(
        "source <(goqctl completion bash)                 # this shell",
        "goqctl completion bash > /etc/bash_completion.d/goqctl",
        'goqctl completion zsh > "${fpath[1]}/_goqctl"',
    ),
)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for bash or zsh (commands, flags and their choices)."""
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    assert found is not None  # both are built into click
    click.echo(found(cli, {}, "goqctl", "_GOQCTL_COMPLETE").source())
