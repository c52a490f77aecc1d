"""``goq-operator``: the kopf operator with its admission webhook."""

from goq.cli.common import not_built_yet, parser


def main(argv: list[str] | None = None) -> int:
    """Run the operator (not built yet)."""
    parser("goq-operator", "The GoQ operator and sidecar-injection webhook.").parse_args(argv)
    return not_built_yet("goq-operator", "the operator")
