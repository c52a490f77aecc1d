"""How results are printed: ``-o text`` (aligned tables), ``wide`` (more columns), ``json`` or ``yaml``.

``json`` prints one document per result (a list is one document; ``receive`` prints one per message, so
it streams as JSON lines); ``yaml`` separates documents with ``---``. A closed pipe (``| head -1``)
raises ``PipeClosedError``, which the entry point turns into a quiet exit.
"""

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

FORMATS: Final = ("text", "wide", "json", "yaml")
GAP: Final = "   "
"""Between table columns, as kubectl pads them."""


class PipeClosedError(Exception):
    """Standard output was closed by its reader (``goqctl poison list | head -1``): stop quietly."""


@dataclass(frozen=True)
class Table:
    """Rows under a header; the columns from ``wide_from`` on are shown only with ``-o wide``."""

    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    wide_from: int | None = None
    empty: str = ""
    """Printed instead of the header alone when there are no rows (text and wide)."""

    def render(self, wide: bool) -> str:
        if not self.rows and self.empty:
            return self.empty
        stop = len(self.columns) if wide or self.wide_from is None else self.wide_from
        lines = [list(self.columns[:stop]), *([str(cell) for cell in row[:stop]] for row in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(stop)]
        return "\n".join(
            GAP.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
        )


def fields(pairs: Mapping[str, object]) -> str:
    """``name:  value`` lines, the values aligned after the longest name."""
    width = max((len(name) for name in pairs), default=0) + 3
    return "\n".join(f"{name + ':':<{width}}{value}".rstrip() for name, value in pairs.items())


@dataclass
class Output:
    """Prints each result in the chosen format, flushing each so that pipes see results as they come."""

    form: str = "text"
    _documents: int = field(default=0, init=False)

    @property
    def structured(self) -> bool:
        return self.form in ("json", "yaml")

    def emit(self, data: Any, text: str | Table = "") -> None:
        """``data`` for json/yaml, ``text`` (a string or a Table) for text and wide."""
        if self.form == "json":
            self._write(json.dumps(data) + "\n")
        elif self.form == "yaml":
            import yaml  # only -o yaml pays for it

            separator = "---\n" if self._documents else ""
            self._write(separator + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        else:
            rendered = text.render(self.form == "wide") if isinstance(text, Table) else text
            if rendered:
                self._write(rendered + "\n")
        self._documents += 1

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError as exc:
            raise PipeClosedError() from exc
