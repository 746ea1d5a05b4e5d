"""Credentials out of text: the userinfo of every URL is masked before it reaches a log or an error.

A private package index is usually reached as `https://user:token@pkgs.example/simple`; the build log, a
run's error message and 65_job_prep.txt are readable by every read token, so they must never carry the
token. The masking follows uv's: the password becomes `****` (`user:****@`), and a lone user name (often a
token itself, `https://ghp_xxx@github.com/...`) becomes `****@`.
"""

from __future__ import annotations

import re

MASK = "****"
# scheme://userinfo@ : userinfo stops at whitespace and at the characters that end an authority
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#@]+)@")


def _mask(match: re.Match[str]) -> str:
    user, sep, _password = match["userinfo"].partition(":")
    masked = f"{user}:{MASK}" if sep else MASK
    return f"{match['scheme']}{masked}@"


def redact_urls(text: str) -> str:
    """`text` with the password (or lone user name) of every URL replaced by ****."""
    if "@" not in text:  # the common case: nothing to mask, no regex work
        return text
    return _USERINFO.sub(_mask, text)
