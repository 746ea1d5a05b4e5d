"""A ParallelRunStep's step page in a real browser: Debian's Chromium (headless, via Playwright) against a
real `runyard server` process on 127.0.0.1. The progress file and tracebacks are written by the driver's own
writer (runyard.parallel.joblogs.JobLogs) into the step run's logs folder, as a running job does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runyard import Workspace
from server_process import running_server
from test_parallel_faces import job_logs, make_pipeline, snapshot

pytestmark = pytest.mark.usefixtures("no_stray_processes")
expect = pytest.importorskip("playwright.sync_api").expect


def test_step_page_shows_live_progress_and_links_failed_mini_batches_to_tracebacks(
    tmp_path: Path, page
) -> None:
    ws = Workspace.create(tmp_path / "ws")
    run, step = make_pipeline(ws)
    logs = job_logs(ws, step)
    logs.user_error(
        "process002",
        1,
        "ValueError: bad image 1",
        "Traceback (most recent call last):\nValueError: bad image 1",
    )
    logs.progress(snapshot(117, 3, failures=3))

    with running_server(ws.path, tmp_path / "server.log") as server:
        page.goto(f"{server.url}/runs/{run.id}?step={step.id}")
        card = page.get_by_role("region", name="Parallel run")
        bar = card.locator("progress")
        expect(bar).to_have_attribute("value", "120")
        expect(bar).to_have_attribute("max", "200")
        node = page.locator('[data-step="score"] .node-status')  # the graph shows it too
        expect(node).to_have_text("Running · 120/200")
        expect(card.locator('[data-parallel="speed"]')).to_have_text("1,234 items/s")
        expect(card.locator('[data-parallel="eta"]')).to_have_text("0:42")
        expect(card.locator('[data-parallel="mini-batches"]')).to_have_text("117 completed, 3 failed")
        failures = card.get_by_role("table", name="Failed mini-batches")
        expect(failures.locator("tr:has(td)")).to_have_count(3)

        # the driver replaces its progress file: the page follows without a reload (no metric was logged)
        logs.progress(snapshot(150, 3, failures=3))
        expect(bar).to_have_attribute("value", "153", timeout=20_000)  # a poll away; a busy box is slow
        expect(node).to_have_text("Running · 153/200")
        expect(card.locator('[data-parallel="mini-batches"]')).to_have_text("150 completed, 3 failed")

        logs.result(snapshot(197, 3, state="completed", failures=3), "Completed", "3 mini-batches failed.")
        ws.store.set_run_status(step.id, "Completed")
        expect(card.locator('[data-parallel="state"]')).to_have_text("completed", timeout=20_000)
        expect(card.locator('[data-parallel="eta"]')).to_have_count(0)  # no ETA once it ended
        expect(bar).to_have_attribute("value", "200")

        link = failures.get_by_role("link", name="logs/user/error/0/process002.txt").first
        link.click()
        expect(page).to_have_url(re.compile(rf"/runs/{step.id}/files/logs/user/error/0/process002\.txt$"))
        expect(page.locator("body")).to_contain_text("ValueError: bad image 1")


def test_a_change_before_the_page_stream_connects_still_reaches_the_page(tmp_path: Path, page) -> None:
    """The page renders, then opens its event stream; a progress file replaced in between used to be taken
    as the stream's baseline and never shown (seen on a busy CI box). The stream is held back here until
    the file has changed, which makes that gap certain."""
    ws = Workspace.create(tmp_path / "ws")
    run, step = make_pipeline(ws)
    logs = job_logs(ws, step)
    logs.progress(snapshot(117, 3, failures=3))
    held = []
    page.route("**/studio/api/live*", lambda route: held.append(route))
    with running_server(ws.path, tmp_path / "server.log") as server:
        page.goto(f"{server.url}/runs/{run.id}?step={step.id}")
        bar = page.get_by_role("region", name="Parallel run").locator("progress")
        expect(bar).to_have_attribute("value", "120")
        page.wait_for_timeout(200)  # lets the held stream request reach the route handler
        assert len(held) == 1, "the page opens one event stream"
        logs.progress(snapshot(150, 3, failures=3))
        held[0].continue_()
        expect(bar).to_have_attribute("value", "153", timeout=20_000)
