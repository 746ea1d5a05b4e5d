"""A stat cache for content hashes: (file key, size, mtime_ns) -> sha256, in a small SQLite file.

Reuse and dataset registration need the sha256 of every file behind a path; reading 100k files each time
would make an unchanged folder cost minutes. The contract is the one make, rsync and git's index use: a
file whose size and mtime_ns are unchanged is trusted to have the same bytes. The cache lives in the
workspace's local folder (never in the shared database: it describes this machine's files), uses WAL
mode so concurrent steps can read while one writes, and answers a whole folder in a few bulk queries.
Keys are absolute local paths, or "<store url>|<path>" for remote stores that report an mtime.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hashes (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
) WITHOUT ROWID
"""
_CHUNK = 900  # below SQLite's default limit of host parameters per statement


class HashCache:
    """One cache file. Cheap to open; each call runs in its own connection (safe across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def lookup(self, entries: Sequence[tuple[str, int, int]], prefix: str | None = None) -> dict[str, str]:
        """sha256 for each (key, size, mtime_ns) whose cached size and mtime match exactly.

        With `prefix` (a folder every key starts with), all cached rows under it come back in one range
        scan of the primary key instead of chunked IN queries: the fast path for a whole folder."""
        wanted = {key: (size, mtime) for key, size, mtime in entries}
        found: dict[str, str] = {}
        conn = self._connect()
        try:
            if prefix is not None:
                low = prefix.rstrip("/")
                cursors = [
                    conn.execute(
                        "SELECT key, size, mtime_ns, sha256 FROM file_hashes WHERE key >= ? AND key < ?",
                        (low, low + "\U0010ffff"),
                    )
                ]
            else:
                keys = list(wanted)
                cursors = [
                    conn.execute(
                        "SELECT key, size, mtime_ns, sha256 FROM file_hashes WHERE key IN "
                        f"({','.join('?' * len(keys[i : i + _CHUNK]))})",
                        keys[i : i + _CHUNK],
                    )
                    for i in range(0, len(keys), _CHUNK)
                ]
            for rows in cursors:
                for key, size, mtime, sha in rows:
                    if wanted.get(key) == (size, mtime):
                        found[key] = sha
        finally:
            conn.close()
        return found

    def store(self, entries: Iterable[tuple[str, int, int, str]]) -> None:
        """Remember (key, size, mtime_ns, sha256) rows, replacing older entries for the same keys."""
        rows = list(entries)
        if not rows:
            return
        conn = self._connect()
        try:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO file_hashes (key, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                    rows,
                )
        finally:
            conn.close()
