"""Debian's Chromium, headless, driven by Playwright: for `make screenshots` and the browser tests.

runyard never downloads a browser; it launches /usr/bin/chromium with flags that keep it from
reaching for the internet (background networking, component updates, sync), so it only talks to
the studio on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright: Any) -> Any:
    """A Playwright Browser on Debian's Chromium (install it with `apt-get install chromium`)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
