"""Finding a named plug-in by entry point and creating it with its context."""

from importlib.metadata import entry_points
from typing import Any

from goq.errors import ConfigError


def load_plugin(group: str, kind: str, name: str, context: Any) -> Any:
    """Call the factory registered as ``name`` in ``group`` with ``context``.

    ``kind`` names the plug-in in messages ("poison sink", "metrics sink").
    """
    found = {ep.name: ep for ep in entry_points(group=group)}
    entry = found.get(name)
    if entry is None:
        raise ConfigError(
            f"{kind} {name!r} is not installed; available: {', '.join(sorted(found)) or 'none'} "
            f"(plug-ins register under the entry point group {group!r})"
        )
    try:
        factory = entry.load()
    except Exception as exc:
        raise ConfigError(f"{kind} {name!r} ({entry.value}) failed to load: {exc}") from exc
    return factory(context)


def check_options(
    kind: str, name: str, options: dict[str, Any], known: set[str], required: set[str] | None = None
) -> None:
    """Refuse options a plug-in does not know, and missing required ones, naming them and the known ones."""
    if unknown := set(options) - known:
        listed = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"{kind} {name!r} has unknown option(s) {', '.join(sorted(unknown))}; known: {listed}")
    if missing := (required or set()) - set(options):
        raise ConfigError(f"{kind} {name!r} needs option(s) {', '.join(sorted(missing))}")
