"""v1's partition_format: turning parts of a file's path into columns.

'{name}' parts become string columns; '{name:yyyy/MM/dd}' parts (yyyy, MM, dd, HH, mm, ss) together make
one timestamp column, named after the first such part; '*' matches anything within one folder (as in
v1's globs). As in v1 the format describes the end of the path, from the first partition key to the file
name, e.g. '/{Department}/{PartitionDate:yyyy/MM/dd}/data.csv' on '.../Accounts/2019/01/01/data.csv'.

A format comes from a dataset definition, which anyone with a write or run token can register over REST,
and the studio previews every version: matching must take bounded time whatever the format. A regex
with several wildcards in a row ('*a*a*a*...x') backtracks polynomially (hours for 12 stars on a
60-character path), so the format is matched by a small matcher of its own that remembers which
(part of the format, position in the path) pairs already failed: every pair is tried at most once, so a
match costs at most (parts of the format) x (characters of the path) x (characters of one folder name).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from runyard.errors import InvalidInputError

_DATE_PARTS = {"yyyy": 4, "MM": 2, "dd": 2, "HH": 2, "mm": 2, "ss": 2}
_DIGITS = frozenset("0123456789")
#: Parts (literal runs, '*', '{keys}', date fields) a format may have: far more than any real layout.
MAX_PARTS = 200

# A format part: (kind, argument, capture). kind "lit": argument is the text; "star": '*', any characters
# but '/', as few as possible; "key": '{name}', one or more characters but '/', as few as possible,
# captured into column slot `argument` (None for a repeated name); "digits": exactly `argument` ASCII
# digits, captured as date field `capture` (None for a repeated field).
_Part = tuple[str, Any, Any]


class PartitionFormat:
    """v1's partition_format: '{name}' parts become string columns, '{name:yyyy/MM/dd}' parts together
    make one timestamp column named after the first such part; '*' matches within one folder. The format
    covers the end of the path, from the first partition key to the file name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.columns: list[str] = []
        self.date_column: str | None = None
        self.unmatched: list[str] = []
        self._parts: list[_Part] = []
        fields: set[str] = set()
        for piece in re.split(r"(\{[^}]*\}|\*)", text):
            if piece == "*":
                self._parts.append(("star", None, None))
            elif piece.startswith("{") and piece.endswith("}"):
                name, _, date_format = piece[1:-1].partition(":")
                if not name:
                    raise InvalidInputError(
                        f"partition_format {text!r} has an empty '{{}}': name every part."
                    )
                if date_format:
                    self.date_column = self.date_column or name
                    for part in re.split(r"(yyyy|MM|dd|HH|mm|ss)", date_format):
                        if part in _DATE_PARTS:
                            self._parts.append(
                                ("digits", _DATE_PARTS[part], None if part in fields else part)
                            )
                            fields.add(part)
                        else:
                            self._literal(part)
                elif name in self.columns:  # a repeated part: v1 takes the first one's value
                    self._parts.append(("key", None, None))
                else:
                    self.columns.append(name)
                    self._parts.append(("key", len(self.columns) - 1, None))
            else:
                self._literal(piece)
        if self.date_column is not None and "yyyy" not in fields:
            raise InvalidInputError(
                f"partition_format {text!r} has a date part without 'yyyy': add the year."
            )
        if len(self._parts) > MAX_PARTS:
            raise InvalidInputError(
                f"partition_format {text[:60]!r}... has {len(self._parts)} parts; at most {MAX_PARTS} are "
                "allowed. Describe the end of the path only, e.g. '/{Department}/{PartitionDate:yyyy/MM/dd}/*.csv'."
            )
        self._anchored = text.startswith("/")

    def _literal(self, text: str) -> None:
        if not text:
            return
        if self._parts and self._parts[-1][0] == "lit":
            self._parts[-1] = ("lit", self._parts[-1][1] + text, None)
        else:
            self._parts.append(("lit", text, None))

    def values(self, display: str) -> dict[str, Any] | None:
        """The partition columns of one file (its path as shown, e.g. 'sales/HR/2020/12/31/data.csv'),
        or None when the format does not describe it (remembered for check_matched)."""
        captured = self._search("/" + display.lstrip("/"))
        if captured is None:
            self.unmatched.append(display)
            return None
        found: dict[str, Any] = {name: captured[i] for i, name in enumerate(self.columns)}
        if self.date_column is not None:
            parts = {k: int(v) for k, v in captured.items() if isinstance(k, str)}
            found[self.date_column] = datetime(
                parts["yyyy"], parts.get("MM", 1), parts.get("dd", 1), parts.get("HH", 0), parts.get("mm", 0),
                parts.get("ss", 0),
            )  # fmt: skip
        return found

    def _search(self, path: str) -> dict[int | str, str] | None:
        """The captures of the first match ending at the end of `path` and starting right after a '/'
        (or anywhere for a format that starts with '/'), preferring the shortest wildcards, as the regex
        '(?:^|/)<format>$' searched with lazy wildcards would; None when there is no match."""
        parts, size = self._parts, len(path)
        folder_end = [size] * (size + 1)  # folder_end[i]: the first '/' at or after i
        for i in range(size - 1, -1, -1):
            folder_end[i] = i if path[i] == "/" else folder_end[i + 1]
        failed: set[tuple[int, int]] = set()
        captured: dict[int | str, str] = {}

        def walk(index: int, pos: int) -> bool:
            if index == len(parts):
                return pos == size
            if (index, pos) in failed:
                return False
            kind, arg, capture = parts[index]
            ok = False
            if kind == "lit":
                ok = path.startswith(arg, pos) and walk(index + 1, pos + len(arg))
            elif kind == "digits":
                text = path[pos : pos + arg]
                ok = len(text) == arg and _DIGITS.issuperset(text) and walk(index + 1, pos + arg)
                if ok and capture is not None:
                    captured[capture] = text
            else:
                for end in range(pos + (kind == "key"), folder_end[pos] + 1):
                    if walk(index + 1, end):
                        if kind == "key" and arg is not None:
                            captured[arg] = path[pos:end]
                        ok = True
                        break
            if not ok:
                failed.add((index, pos))
            return ok

        starts = range(size + 1) if self._anchored else [0, *(i + 1 for i in range(size) if path[i] == "/")]
        for start in starts:
            if walk(0, start):
                return captured
        return None

    def names(self) -> list[str]:
        return self.columns + ([self.date_column] if self.date_column else [])

    def check_matched(self, displays: list[str]) -> None:
        if displays and len(self.unmatched) == len(displays):
            raise InvalidInputError(
                f"partition_format {self.text!r} matches none of the files (e.g. {displays[0]!r}): it must "
                "describe the end of each path, e.g. '/{Department}/{PartitionDate:yyyy/MM/dd}/data.csv'."
            )
