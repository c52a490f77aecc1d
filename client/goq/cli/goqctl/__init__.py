"""``goqctl``: send, receive and inspect messages through a GoQ sidecar, and see GoQ in a cluster.

Modules: ``app`` (the commands and flags), ``output`` (text, wide, json, yaml), ``humanize`` (times and
sizes), ``messaging`` (send and receive), ``poisons`` (poison filters and views), ``cluster`` (list and
status, pure), ``targets`` (which sidecar), ``kube`` (the kubeconfig and the API server), ``forwarding``
(a port-forward through the API server), ``completing`` (names for shell completion), ``errors``.

Exit codes: 0 done; 1 the sidecar refused (bad message, queue full, unknown id); 2 bad arguments;
3 the sidecar or the cluster could not be reached, or the sidecar cannot store now; 130 interrupted;
141 standard output was closed by its reader (``| head``), as for programs killed by SIGPIPE.
"""

import os
import sys

from goq.errors import GoQError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``goqctl``: runs one command and turns errors into one line and an exit code."""
    import click

    from goq.cli.goqctl.app import Options, cli
    from goq.cli.goqctl.errors import EXIT_PIPE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, TargetError, UsageError
    from goq.cli.goqctl.output import PipeClosedError

    options = Options()
    try:
        result = cli.main(args=argv, prog_name="goqctl", standalone_mode=False, obj=options)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 130
    except PipeClosedError:
        _silence_stdout()
        return EXIT_PIPE
    except UsageError as exc:
        print(f"goqctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TargetError as exc:
        print(f"goqctl: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except GoQError as exc:
        from goq.client import UnavailableError

        if isinstance(exc, UnavailableError):
            print(f"goqctl: {options.reached or 'sidecar'}: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        print(f"goqctl: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return result if isinstance(result, int) else 0


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
