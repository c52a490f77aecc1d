"""``goqctl``: send, receive and inspect messages through a GoQ sidecar."""

from goq.cli.common import not_built_yet, parser


def main(argv: list[str] | None = None) -> int:
    """Run goqctl (not built yet)."""
    parser("goqctl", "Send, receive and inspect GoQ messages.").parse_args(argv)
    return not_built_yet("goqctl", "the command line")
