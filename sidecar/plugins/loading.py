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
