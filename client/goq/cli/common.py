"""What every GoQ command line shares: the parser's version flag."""

import argparse

from goq.version import __version__


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--version`` that prints the installed GoQ version."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"{prog} {__version__}")
    return p
