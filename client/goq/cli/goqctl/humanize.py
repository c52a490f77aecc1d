"""Times and sizes for people: ``2026-12-05T10:00:00Z (5m ago)``, ``3.0 MiB``. Pure: no I/O."""

import datetime

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def iso_time(ms: int) -> str:
    """RFC 3339 in UTC to the millisecond, as the REST API writes times (``sentAt``, ``poisonedAt``)."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age(seconds: float) -> str:
    """kubectl's short age: ``42s``, ``5m10s``, ``47m``, ``5h``, ``3d``; ``0s`` for a moment in the future."""
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole}s"
    if whole < 600:
        return f"{whole // 60}m{whole % 60}s"
    if whole < 3 * 3600:
        return f"{whole // 60}m"
    return f"{whole // 3600}h" if whole < 48 * 3600 else f"{whole // 86400}d"


def ago(ms: int, now: float) -> str:
    """``ms`` (epoch milliseconds) as ``<iso> (<age> ago)``; ``now`` in epoch seconds."""
    return f"{iso_time(ms)} ({age(now - ms / 1000)} ago)"


def size(count: int) -> str:
    """Bytes in binary units with one decimal: ``512 B``, ``1.5 KiB``, ``3.0 MiB``."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
