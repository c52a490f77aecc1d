"""``goq-sidecar``: the queue-manager sidecar process."""

from goq.cli.common import not_built_yet, parser


def main(argv: list[str] | None = None) -> int:
    """Run the sidecar (not built yet: the queue manager engine comes next)."""
    parser("goq-sidecar", "The GoQ queue-manager sidecar.").parse_args(argv)
    return not_built_yet("goq-sidecar", "the queue manager")
