"""The studio in a real browser: Debian's Chromium (headless, via Playwright) against a real
`runyard server` process on 127.0.0.1, with runs and pipelines executed by real processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.engine.service import service_info
from runyard.pipeline import Pipeline, PipelineParameter, PipelineRun, PythonScriptStep
from runyard.server.auth import create_token
from runyard.store import MetricRow
from server_process import ServerProcess, running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")
expect = pytest.importorskip("playwright.sync_api").expect

WAIT_FOR_GO = """
import pathlib, sys, time
print("first line", flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print("LIVE-LINE-42", flush=True)
"""


@dataclass
class Studio:
    ws: Workspace
    server: ServerProcess

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    ws = Workspace.create(tmp_path / "ws")
    with running_server(
        ws.path,
        tmp_path / "server.log",
        env={"RUNYARD_SCHEDULER_IDLE_SECONDS": "3", "RUNYARD_SERVER_COMPUTE": "1"},
    ) as server:
        yield Studio(ws, server)


@pytest.fixture
def auth_studio(tmp_path: Path) -> Iterator[Studio]:
    ws = Workspace.create(tmp_path / "ws")
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        yield Studio(ws, server)


def test_live_log_line_appears_while_the_run_runs(studio: Studio, page, tmp_path: Path) -> None:
    src = SourceDir(tmp_path / "src").gen({"slow.py": WAIT_FOR_GO})
    go = tmp_path / "go"
    run = Experiment(studio.ws, "live-exp").submit(
        ScriptRunConfig(source_directory=src, script="slow.py", arguments=[str(go)])
    )
    wait_for(
        lambda: (
            "first line" in run.get_details_with_logs()["logFiles"].get("azureml-logs/70_driver_log.txt", "")
        )
    )

    page.goto(f"{studio.url}/experiments")
    page.get_by_role("link", name="live-exp", exact=True).click()
    page.get_by_role("link", name="live-exp #1").click()
    expect(page.locator(f'h1 [data-status-of="{run.id}"]')).to_have_text("Running")
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/studio/api/live" in r.url else None)
    page.get_by_role("link", name="Outputs + logs").click()
    log = page.locator("#log")
    expect(log).to_contain_text("first line")
    assert len(streams) == 1 and "log_run=" in streams[0]  # one stream carries changes and the log
    expect(log).not_to_contain_text("LIVE-LINE-42")

    go.touch()
    expect(log).to_contain_text("LIVE-LINE-42")
    expect(page.locator("#log-state")).to_have_text("run ended")
    expect(page.locator(f'h1 [data-status-of="{run.id}"]')).to_have_text(
        "Completed"
    )  # the badge went live too
    assert run.wait_for_completion()["status"] == "Completed"


def test_add_a_metric_column_and_sort_by_it(studio: Studio, page) -> None:
    exp = Experiment(studio.ws, "sweep")
    for name, accuracies in [("low", [0.1, 0.3]), ("high", [0.2, 0.9, 0.4]), ("mid", [0.5]), ("none", [])]:
        run = exp.start_logging(name=name)
        for value in accuracies:
            run.log("acc", value)
        run.complete()

    page.goto(f"{studio.url}/runs")
    page.get_by_role("combobox", name="Metric column").select_option("max:acc")
    page.get_by_role("button", name="Add column").click()
    header = page.get_by_role("columnheader", name="acc (max)")
    expect(header).to_be_visible()

    def column() -> list[str]:
        cells = page.locator("table.runs tbody tr td:last-child")
        return [c.strip() for c in cells.all_inner_texts()]

    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    assert column() == ["0.9", "0.5", "0.3", "—"]  # runs without the metric come last
    header.get_by_role("link").click()
    expect(page.get_by_role("columnheader", name="acc (max)")).to_have_attribute("aria-sort", "ascending")
    assert column() == ["0.3", "0.5", "0.9", "—"]
    names = [t.strip() for t in page.locator("table.runs tbody tr td:nth-child(2) a").all_inner_texts()]
    assert names == ["low", "mid", "high", "none"]

    # the links an MLflow client prints against this server (MLflow's UI routes, in the fragment)
    page.goto(f"{studio.url}/#/experiments/{exp.id}/runs/{run.id}")
    expect(page).to_have_url(f"{studio.url}/runs/{run.id}")
    page.goto(f"{studio.url}/#/experiments/{exp.id}")
    expect(page).to_have_url(f"{studio.url}/experiments/sweep")
    # MLflow's "0" is its default experiment, runyard's "Default"; an unknown id is the studio's 404
    Experiment(studio.ws, "Default").start_logging().complete()
    default = page.request.get(f"{studio.url}/experiment-ids/0", max_redirects=0)
    assert default.status == 303 and default.headers["location"] == "/experiments/Default"
    assert page.request.get(f"{studio.url}/experiment-ids/no-such-id").status == 404


def test_failed_step_shows_its_driver_log_and_reuse_reason(studio: Studio, page, tmp_path: Path) -> None:
    prep = SourceDir(tmp_path / "prep").gen({"prep.py": "print('prepared')"})
    train = SourceDir(tmp_path / "train").gen(
        {"train.py": "print('training starts')\nraise ValueError('learning rate <b>too high</b>')\n"}
    )
    steps = [
        PythonScriptStep("prep.py", name="prep", source_directory=prep),
        PythonScriptStep("train.py", name="train", source_directory=train),
    ]
    steps[1].run_after(steps[0])
    run = Pipeline(studio.ws, steps).submit("failing", show_output=False)
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"

    page.goto(f"{studio.url}/runs/{run.id}")
    expect(page.get_by_role("link", name="Step prep: Completed")).to_be_visible()
    for _ in range(40):  # the graph works without a mouse: Tab to the failed step, Enter opens it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Step train: Failed":
            break
    page.keyboard.press("Enter")
    log = page.locator("#log")
    expect(log).to_contain_text("ValueError: learning rate <b>too high</b>")  # escaped, shown as text
    expect(log.locator(".err").filter(has_text="ValueError: learning rate").first).to_be_visible()  # marked
    expect(log.locator(".line:not(.err)").filter(has_text="training starts")).to_have_count(
        1
    )  # plain lines not
    page.get_by_role("link", name="Overview").click()
    expect(page.locator(".reuse .reason")).to_contain_text("no earlier run")
    expect(page.get_by_role("alert")).to_contain_text("exited with code 1")


def test_clone_resubmits_with_a_new_parameter_value(studio: Studio, page, tmp_path: Path) -> None:
    src = SourceDir(tmp_path / "lr").gen(
        {"lr.py": "import sys\nfrom runyard import Run\nRun.get_context().log('lr', float(sys.argv[1]))\n"}
    )
    lr = PipelineParameter("learning_rate", 0.5)
    step = PythonScriptStep("lr.py", name="fit", source_directory=src, arguments=[lr])
    first = Pipeline(studio.ws, [step]).submit("clone-exp", show_output=False)
    assert first.wait_for_completion(show_output=False) == "Finished"
    # The scheduler this test's own submit started takes no {"auth": "off"} submissions; once it idles
    # out, the studio's clone starts one of the compute host's own that does (docs/security.md).
    wait_for(lambda: service_info(studio.ws) is None, timeout=30)

    page.goto(f"{studio.url}/runs/{first.id}")
    page.get_by_role("link", name="Clone", exact=True).click()
    field = page.get_by_label(re.compile("learning_rate"))
    expect(field).to_have_value("0.5")
    field.fill("0.2")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + re.escape(first.id) + ")"))
    new_id = page.url.rsplit("/runs/", 1)[1].split("?")[0]
    new = PipelineRun.get(studio.ws, new_id)
    assert new.get_parameters() == {"learning_rate": 0.2}
    assert new.wait_for_completion(show_output=False) == "Finished"
    assert new.find_step_run("fit")[0].get_metrics()["lr"] == 0.2
    expect(page.get_by_role("link", name="Step fit: Completed")).to_be_visible()  # the graph updated live


@pytest.mark.filterwarnings("ignore:Steps 'job1', 'job2' share source_directory")
def test_compute_page_shows_running_and_queued_runs(
    studio: Studio,
    page,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "1")  # the scheduler this test starts has one slot
    go = tmp_path / "go"
    src = SourceDir(tmp_path / "wait").gen({"wait.py": WAIT_FOR_GO})
    steps = [
        PythonScriptStep(
            "wait.py", name=f"job{i}", source_directory=src, arguments=[str(go)], allow_reuse=False
        )
        for i in (1, 2)
    ]
    run = Pipeline(studio.ws, steps).submit("busy", show_output=False)
    wait_for(
        lambda: {r.status for r in studio.ws.store.list_descendants(run.id, recursive=False)} >= {"Queued"}
    )

    page.goto(f"{studio.url}/compute")
    target = page.get_by_role("region", name="Compute target local")
    expect(target.locator(".badge", has_text="Queued")).to_have_count(1)
    expect(target.locator(".badge", has_text="Running")).to_have_count(1)
    expect(target.get_by_role("link", name="busy").first).to_have_attribute("href", "/experiments/busy")
    go.touch()
    assert run.wait_for_completion(show_output=False) == "Finished"
    expect(target.get_by_text("Idle: nothing queued or running.")).to_be_visible()  # finished runs leave live


def test_sign_in_with_a_token_and_read_tokens_change_nothing(
    auth_studio: Studio, page, tmp_path: Path
) -> None:
    store = auth_studio.ws.store
    read_token, _ = create_token(store, "read", name="viewer")  # type: ignore[arg-type]
    src = SourceDir(tmp_path / "one").gen({"one.py": "print('one')"})
    run = Pipeline(auth_studio.ws, [PythonScriptStep("one.py", name="one", source_directory=src)]).submit(
        "guarded", show_output=False, tags={"note": "<img src=x onerror=alert(1)>"}
    )
    run.wait_for_completion(show_output=False)

    page.goto(f"{auth_studio.url}/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fruns"))
    page.get_by_label("Workspace token").fill("ry_000000000000_notarealtokenatallxxxxx")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("Workspace token").fill(read_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/runs$"))
    expect(page.locator(".tag")).to_have_text("note=<img src=x onerror=alert(1)>")  # shown, not run
    assert page.locator("img[src=x]").count() == 0

    page.goto(f"{auth_studio.url}/runs/{run.id}/clone")
    expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    response = page.request.post(f"{auth_studio.url}/runs/{run.id}/clone", form={"experiment": "guarded"})
    assert response.status == 403
    assert "can look but not change" in response.text()
    assert len(store.list_runs(experiment_name="guarded", top_level_only=True)) == 1  # nothing was submitted


def test_compare_draws_one_line_per_run_from_downsampled_data(studio: Studio, page) -> None:
    exp = Experiment(studio.ws, "charts")
    ids = []
    for name, length in [("<b>short</b>", 30), ("long", 20_000)]:
        run = exp.start_logging(name=name)
        studio.ws.store.append_metrics(
            [MetricRow(run.id, "loss", "scalar", 0.0, value=1 / (i + 1), step=i) for i in range(length)]
        )
        run.complete()
        ids.append(run.id)

    page.goto(f"{studio.url}/runs?experiment=charts")
    for run_id in ids:
        page.get_by_role("checkbox", name=re.compile("Select")).and_(
            page.locator(f'[value="{run_id}"]')
        ).check()
    page.get_by_role("button", name="Compare selected runs").click()
    chart = page.locator('[data-chart][data-metric="loss"]')
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart).to_have_attribute("data-points", re.compile(r"^\d+,\d+$"))
    runs_attr, points_attr = chart.get_attribute("data-runs") or "", chart.get_attribute("data-points") or ""
    drawn = dict(zip(json.loads(runs_attr), points_attr.split(","), strict=True))
    assert drawn[ids[0]] == "30"  # a short series arrives whole
    assert 100 < int(drawn[ids[1]]) <= 2000  # 20,000 values arrive as at most 2,000 points
    legend = chart.locator(".legendtext")
    expect(legend).to_have_count(2)
    assert sorted(legend.all_text_contents()) == ["<b>short</b>", "long"]  # shown as written, not as markup
