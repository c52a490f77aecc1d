"""What every GoQ command line shares: the parser's version flag and the not-yet-built notice."""

import argparse
import sys

from goq import __version__


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--version`` that prints the installed GoQ version."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"{prog} {__version__}")
    return p


def not_built_yet(prog: str, what: str) -> int:
    """Say plainly that a component does not exist yet, and fail, rather than pretend to run."""
    print(f"{prog} {__version__}: {what} is not built yet; only --help and --version work.", file=sys.stderr)
    return 2
