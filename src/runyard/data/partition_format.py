"""v1's partition_format: turning parts of a file's path into columns.

'{name}' parts become string columns; '{name:yyyy/MM/dd}' parts (yyyy, MM, dd, HH, mm, ss) together make
one timestamp column, named after the first such part; '*' matches anything. As in v1 the format
describes the end of the path, from the first partition key to the file name, e.g.
'/{Department}/{PartitionDate:yyyy/MM/dd}/data.csv' on '.../Accounts/2019/01/01/data.csv'.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from runyard.errors import InvalidInputError

_DATE_PARTS = {"yyyy": 4, "MM": 2, "dd": 2, "HH": 2, "mm": 2, "ss": 2}


class PartitionFormat:
    """v1's partition_format: '{name}' parts become string columns, '{name:yyyy/MM/dd}' parts together
    make one timestamp column named after the first such part; '*' matches anything. The format covers
    the end of the path, from the first partition key to the file name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.columns: list[str] = []
        self.date_column: str | None = None
        self.unmatched: list[str] = []
        pattern = ""
        for piece in re.split(r"(\{[^}]*\}|\*)", text):
            if piece == "*":
                pattern += ".*?"
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
                            group = f"?P<_d_{part}>" if f"<_d_{part}>" not in pattern else ""
                            pattern += f"({group}\\d{{{_DATE_PARTS[part]}}})"
                        else:
                            pattern += re.escape(part)
                elif name in self.columns:  # a repeated part: v1 takes the first one's value
                    pattern += "([^/]+?)"
                else:
                    self.columns.append(name)
                    pattern += f"(?P<p{len(self.columns) - 1}>[^/]+?)"
            else:
                pattern += re.escape(piece)
        if self.date_column is not None and "_d_yyyy" not in pattern:
            raise InvalidInputError(
                f"partition_format {text!r} has a date part without 'yyyy': add the year."
            )
        prefix = "" if text.startswith("/") else "(?:^|/)"
        self.regex = re.compile(prefix + pattern + "$")

    def values(self, display: str) -> dict[str, Any] | None:
        match = self.regex.search("/" + display.lstrip("/"))
        if match is None:
            self.unmatched.append(display)
            return None
        found: dict[str, Any] = {name: match.group(f"p{i}") for i, name in enumerate(self.columns)}
        if self.date_column is not None:
            parts = {k[3:]: int(v) for k, v in match.groupdict().items() if k.startswith("_d_") and v}
            found[self.date_column] = datetime(
                parts["yyyy"], parts.get("MM", 1), parts.get("dd", 1), parts.get("HH", 0), parts.get("mm", 0),
                parts.get("ss", 0),
            )  # fmt: skip
        return found

    def names(self) -> list[str]:
        return self.columns + ([self.date_column] if self.date_column else [])

    def check_matched(self, displays: list[str]) -> None:
        if displays and len(self.unmatched) == len(displays):
            raise InvalidInputError(
                f"partition_format {self.text!r} matches none of the files (e.g. {displays[0]!r}): it must "
                "describe the end of each path, e.g. '/{{Department}}/{{PartitionDate:yyyy/MM/dd}}/data.csv'."
            )
