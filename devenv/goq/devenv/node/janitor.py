"""The janitor of a node started for a test session: it undoes the node when the session ends.

``python -m goq.devenv.node.janitor RECORD`` waits until its standard input ends, which happens when
the process that started the node exits, however it exits (even SIGKILL: the kernel closes the pipe),
and then tears the node down from its record. The kubelet and containerd die with their parent
(``PR_SET_PDEATHSIG``), but containerd's shims and the containers do not; nor do the network namespace,
the mount namespace's file, the cgroups or the kernel settings. After a normal stop it finds nothing
left and exits.
"""

import signal
import sys
from pathlib import Path

from goq.devenv.node.cleanup import teardown


def main(argv: list[str]) -> int:
    """Wait for standard input to end, then tear down the node recorded in ``argv[0]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the tests must not skip the cleanup
    sys.stdin.buffer.read()
    left = teardown(Path(argv[0]))
    for what in left:
        print(f"goq node janitor: could not remove {what}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
