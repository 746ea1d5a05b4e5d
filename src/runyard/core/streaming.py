"""Streaming a run's driver log to a terminal while it runs (wait_for_completion(show_output=True), `runyard logs -f`)."""

from __future__ import annotations

import codecs
import time
from typing import TYPE_CHECKING, TextIO

from runyard.core.run_files import DRIVER_LOG

if TYPE_CHECKING:
    from runyard.core.run import Run


def follow_log(run: Run, out: TextIO, name: str = DRIVER_LOG, poll: float = 0.1) -> None:
    """Copy `name` to `out` as it grows, until the run has ended and the file is read to its end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    while True:
        finished = run._ended()  # read the status first: no bytes can be missed after it
        chunk = run.read_log(name, offset)
        if chunk:
            offset += len(chunk)
            out.write(decoder.decode(chunk))
            out.flush()
            continue
        if finished:
            out.write(decoder.decode(b"", final=True))
            out.flush()
            return
        time.sleep(poll)


def stream_until_done(run: Run, out: TextIO) -> None:
    url = run.get_portal_url()
    out.write(f"RunId: {run.id}\nWeb View: {url}\n\nStreaming {DRIVER_LOG}\n{'=' * 40}\n\n")
    out.flush()
    try:
        follow_log(run, out)
    except KeyboardInterrupt:
        out.write(
            f"\nStopped streaming; run {run.id} keeps going. Follow it with `runyard logs {run.id} -f`.\n"
        )
        raise
    status = run._refresh().status
    out.write(f"\nExecution Summary\n{'=' * 17}\nRunId: {run.id}\nStatus: {status}\nWeb View: {url}\n\n")
    out.flush()
