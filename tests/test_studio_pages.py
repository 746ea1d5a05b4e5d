"""The studio over plain HTTP against a real `runyard server`: pages, downloads, chart data, the log
stream, sign-in cookies, portal links and `runyard up`. Browser behaviour is in test_studio_browser.py."""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import SourceDir, free_port, kill_strays, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.server.auth import create_token
from runyard.store import MetricRow, RunRecord
from server_process import ServerProcess, clean_env, running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ServerProcess]]:
    """One server for the module's tests that each work in their own experiment and runs (a server start
    is seconds of imports); the workspace's leftover schedulers and steps are killed at the end."""
    root = tmp_path_factory.mktemp("studio")
    ws = Workspace.create(root / "ws")
    # this machine is compute, so the studio's clone may start the scheduler here (docs/security.md)
    with running_server(ws.path, root / "server.log", env={"RUNYARD_SERVER_COMPUTE": "1"}) as server:
        yield ws, server
    kill_strays(root)


@pytest.fixture
def served(shared_server: tuple[Workspace, ServerProcess]) -> Iterator[tuple[Workspace, ServerProcess]]:
    """The shared server, checked after each test: a crash or a logged traceback fails the test that
    caused it."""
    yield shared_server
    shared_server[1].check_healthy()


def sse_events(client: httpx.Client, url: str, until: str, timeout: float = 30) -> list[tuple[str, dict]]:
    """Read a Server-Sent Events stream until an event named `until` arrives."""
    events: list[tuple[str, dict]] = []
    name = None
    with client.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name == until:
                    return events
    return events


def test_log_stream_sends_the_tail_then_new_lines_until_the_run_ends(served, tmp_path: Path) -> None:
    ws, server = served
    go = tmp_path / "go"
    src = SourceDir(tmp_path / "src").gen(
        {
            "slow.py": """
            import pathlib, sys, time
            print("before", flush=True)
            while not pathlib.Path(sys.argv[1]).exists():
                time.sleep(0.05)
            print("after ünïcode", flush=True)
            print("no newline at the end", end="", flush=True)
            """
        }
    )
    run = Experiment(ws, "logs").submit(ScriptRunConfig(src, "slow.py", arguments=[str(go)]))
    wait_for(
        lambda: "before" in run.get_details_with_logs()["logFiles"].get("azureml-logs/70_driver_log.txt", "")
    )
    with httpx.Client(base_url=server.url) as client:
        url = f"/studio/api/live?log_run={run.id}&log=azureml-logs/70_driver_log.txt"
        go.touch()
        events = sse_events(client, url, until="end")
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "end"
    text = "".join(data["text"] for name, data in events if name == "append")
    assert "before\n" in text and "after ünïcode\n" in text
    assert text.endswith("no newline at the end")  # the last partial line arrives once the run has ended
    assert events[-1][1]["offset"] == len(text.encode())


def test_chart_data_of_a_long_series_is_downsampled_with_its_extremes(served) -> None:
    ws, server = served
    run = Experiment(ws, "long").start_logging()
    values = [((i * 7919) % 1000) / 1000 for i in range(50_000)]
    values[12_345], values[40_000] = 99.0, -99.0  # one spike, one dip
    ws.store.append_metrics(
        [MetricRow(run.id, "loss", "scalar", 0.0, value=v, step=i) for i, v in enumerate(values)]
    )
    run.complete()
    body = httpx.get(
        f"{server.url}/studio/api/metrics", params={"run": run.id, "name": "loss", "points": 500}
    ).json()
    series = body["series"][0]
    assert series["count"] == 50_000 and series["downsampled"] is True
    assert len(series["y"]) <= 500
    assert max(series["y"]) == 99.0 and min(series["y"]) == -99.0
    assert series["x"][series["y"].index(99.0)] == 12_345  # at the step where it was logged
    bad = httpx.get(f"{server.url}/studio/api/metrics", params={"run": run.id, "name": "loss", "points": 5})
    assert bad.status_code == 400 and "between 10 and" in bad.json()["error"]["message"]


def test_files_download_one_by_one_and_as_a_zip(served, tmp_path: Path) -> None:
    ws, server = served
    src = SourceDir(tmp_path / "src").gen(
        {
            "out.py": "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.txt', 'w').write('w=1')\n"
        }
    )
    run = Experiment(ws, "files").submit(ScriptRunConfig(src, "out.py"))
    run.wait_for_completion()
    base = f"{server.url}/runs/{run.id}"
    one = httpx.get(f"{base}/files/outputs/model.txt", params={"download": 1})
    assert one.status_code == 200 and one.content == b"w=1"
    assert "attachment" in one.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(httpx.get(f"{base}/download.zip").content))
    names = set(archive.namelist())
    assert {f"{run.id}/outputs/model.txt", f"{run.id}/azureml-logs/70_driver_log.txt"} <= names
    assert archive.read(f"{run.id}/outputs/model.txt") == b"w=1"
    escape = httpx.get(f"{base}/files/..%2F..%2Fdb.sqlite")
    assert escape.status_code in (400, 404)
    page = httpx.get(f"{base}?tab=files")
    assert "70_driver_log.txt" in page.text and "model.txt" in page.text


def test_pages_escape_what_users_wrote(served) -> None:
    ws, server = served
    run = Experiment(ws, "esc").start_logging(name="<b>bold</b>")
    run.tag("x", "<img src=x onerror=alert(1)>")
    run.add_properties({"p": "<script>alert('prop')</script>"})
    run.log_row("t", note="<script>alert('row')</script>")
    run.complete()
    for path in ("/experiments", "/runs", f"/runs/{run.id}", f"/runs/{run.id}?tab=metrics"):
        html = httpx.get(server.url + path).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html, path
    assert "&lt;img src=x onerror=alert(1)&gt;" in httpx.get(f"{server.url}/runs/{run.id}").text


def test_unknown_things_get_a_page_that_says_what_to_do(served) -> None:
    _, server = served
    missing = httpx.get(f"{server.url}/runs/nope")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "No run &#39;nope&#39;" in missing.text and "runyard runs list" in missing.text
    bad = httpx.get(f"{server.url}/runs", params={"sort": "colour"})
    assert bad.status_code == 400 and "Cannot sort runs by" in bad.text
    api = httpx.get(f"{server.url}/api/v1/runs/nope")  # the API keeps answering JSON
    assert api.status_code == 404 and api.json()["error"]["code"] == "NotFound"


def test_sign_in_sets_a_cookie_and_data_routes_need_it(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    token, record = create_token(ws.store, "read")  # type: ignore[arg-type]
    run_token, _ = create_token(ws.store, "run", run_id=Experiment(ws, "job-runs").start_logging().id)  # type: ignore[arg-type]
    with (
        running_server(ws.path, tmp_path / "server.log", auth=True) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        page = client.get("/runs?status=Running")
        assert (
            page.status_code == 303 and page.headers["location"] == "/login?next=%2Fruns%3Fstatus%3DRunning"
        )
        assert client.get("/studio/api/live").status_code == 401
        refused = client.post("/login", data={"token": run_token, "next": "/runs"})
        assert refused.status_code == 401 and "run token" in refused.text
        offsite = client.post("/login", data={"token": token, "next": "https://evil.example/"})
        assert offsite.headers["location"] == "/experiments"  # never sent elsewhere
        cookie = offsite.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert client.get("/runs").status_code == 200
        ws.store.revoke_token(record.token_id)
        assert client.get("/runs").status_code == 303  # a revoked token ends the session at once


def test_portal_urls_lead_to_the_studio(served) -> None:
    ws, server = served
    run = Experiment(ws, "portal").start_logging(name="linked")
    run.complete()
    remote = Workspace.get(server.url)
    remote_run = remote.get_run(run.id)
    assert remote_run.get_portal_url() == f"{server.url}/runs/{run.id}"
    page = httpx.get(remote_run.get_portal_url())
    assert page.status_code == 200 and "linked" in page.text
    assert httpx.get(Experiment(remote, "portal").get_portal_url()).status_code == 200
    assert run.get_portal_url() == f"http://127.0.0.1:8765/runs/{run.id}"  # the default for a local workspace


def test_runyard_up_serves_the_studio_and_runs_the_scheduler(tmp_path: Path) -> None:
    from runyard.pipeline import Pipeline, PythonScriptStep

    ws = Workspace.create(tmp_path / "ws")
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "runyard", "-w", str(ws.path), "up", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=clean_env(),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/compute"), timeout=60)
        assert "Scheduler: running (pid " in httpx.get(f"{url}/compute").text
        src = SourceDir(tmp_path / "s").gen({"s.py": "print('hi')"})
        run = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory=src)]).submit(
            "via-up", show_output=False
        )
        assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
        assert str(up.pid) in (ws.path / "scheduler.json").read_text()  # `up` ran it, not a background one
    finally:
        up.terminate()
        up.wait(timeout=30)
        log.close()
    assert "Traceback" not in (tmp_path / "up.log").read_text()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        time.sleep(0.1)
        return False


def test_a_run_token_cannot_read_the_studio_even_as_a_header(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    mine = Experiment(ws, "jobs").start_logging()
    other = Experiment(ws, "private").start_logging(name="someone-else")
    other.upload_file("outputs/secret.txt", io.BytesIO(b"s3cret"))
    run_token, _ = create_token(ws.store, "run", run_id=mine.id)  # type: ignore[arg-type]
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        headers = {"Authorization": f"Bearer {run_token}"}
        for path in ("/runs", f"/runs/{other.id}/files/outputs/secret.txt", f"/runs/{other.id}/download.zip"):
            response = httpx.get(server.url + path, headers=headers)
            assert response.status_code == 403, path
            assert "run token" in response.text and "s3cret" not in response.text
        api = httpx.get(
            f"{server.url}/studio/api/metrics", params={"run": other.id, "name": "x"}, headers=headers
        )
        assert api.status_code == 403


def test_files_a_job_wrote_never_run_in_the_studio(served, tmp_path: Path) -> None:
    ws, server = served
    run = Experiment(ws, "files").start_logging()
    run.upload_file("outputs/page.html", io.BytesIO(b"<script>alert(1)</script>"))
    run.upload_file("outputs/pic.svg", io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>"))
    run.upload_file("outputs/plot.png", io.BytesIO(b"\x89PNG\r\n\x1a\n"))
    run.upload_file("outputs/notes.txt", io.BytesIO(b"<b>plain</b>"))
    run.complete()
    base = f"{server.url}/runs/{run.id}/files/outputs"
    for name in ("page.html", "pic.svg"):
        response = httpx.get(f"{base}/{name}")
        assert response.headers["content-disposition"].startswith("attachment"), name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    png = httpx.get(f"{base}/plot.png")
    assert png.headers["content-type"] == "image/png" and png.headers["content-disposition"] == "inline"
    text = httpx.get(f"{base}/notes.txt")
    assert text.headers["content-type"].startswith("text/plain") and text.text == "<b>plain</b>"
    assert httpx.get(f"{server.url}/runs").headers["x-frame-options"] == "DENY"


def test_cross_site_form_posts_and_foreign_host_names_are_refused(served) -> None:
    _, server = served
    for path, data in [("/login", {"token": "x"}), ("/logout", {}), ("/runs/x/clone", {})]:
        for origin in ("http://evil.example", "null"):
            response = httpx.post(server.url + path, data=data, headers={"Origin": origin})
            assert response.status_code == 403 and "must come from the studio" in response.text, (
                path,
                origin,
            )
    rebound = httpx.get(f"{server.url}/runs", headers={"Host": "evil.example"})  # DNS rebinding
    assert rebound.status_code == 400


def test_file_names_with_url_characters_link_to_themselves(served) -> None:
    ws, server = served
    run = Experiment(ws, "names").start_logging()
    name = "outputs/a #1 %41?.txt"
    run.upload_file(name, io.BytesIO(b"found me"))
    run.complete()
    page = httpx.get(f"{server.url}/runs/{run.id}", params={"tab": "files", "file": name}).text
    href = re.search(r'href="([^"]*)" download>Download', page)
    assert href is not None
    assert httpx.get(server.url + html.unescape(href.group(1))).content == b"found me"


def test_a_long_log_opens_at_a_whole_line(served, tmp_path: Path) -> None:
    ws, server = served
    src = SourceDir(tmp_path / "src").gen(
        {"chatty.py": "for i in range(30000):\n    print(f'line {i:06d} ' + 'é' * 10)\n"}
    )
    run = Experiment(ws, "chatty").submit(ScriptRunConfig(src, "chatty.py"))
    run.wait_for_completion()
    with httpx.Client(base_url=server.url) as client:
        events = sse_events(
            client, f"/studio/api/live?log_run={run.id}&log=azureml-logs/70_driver_log.txt", "end"
        )
    assert events[0][0] == "start" and events[0][1]["skipped"] > 0
    text = "".join(data["text"] for name, data in events if name == "append")
    assert text.startswith("line ") and "\ufffd" not in text  # no half line, no broken character
    assert "line 029999 " in text


def test_a_step_page_works_when_the_pipeline_has_no_graph(served) -> None:
    ws, server = served
    store = ws.store
    exp = store.get_or_create_experiment("legacy")
    parent = store.create_run(
        RunRecord(
            run_id="p1",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Completed",
            run_type="azureml.PipelineRun",
            created_time=time.time(),
        )
    )
    store.create_run(
        RunRecord(
            run_id="s1",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Completed",
            run_type="azureml.StepRun",
            created_time=time.time(),
            parent_id=parent.run_id,
            display_name="old",
        )
    )
    for tab in ("overview", "metrics", "files"):
        response = httpx.get(f"{server.url}/runs/p1", params={"step": "s1", "tab": tab})
        assert response.status_code == 200 and "Step old" in response.text, tab


def test_clone_form_says_which_value_is_wrong_and_submits_nothing(served, tmp_path: Path) -> None:
    from runyard.pipeline import Pipeline, PipelineParameter, PythonScriptStep

    ws, server = served
    src = SourceDir(tmp_path / "p").gen({"p.py": "print('ok')"})
    step = PythonScriptStep(
        "p.py", name="p", source_directory=src, arguments=[PipelineParameter("epochs", 3)]
    )
    run = Pipeline(ws, [step]).submit("forms", show_output=False)
    run.wait_for_completion(show_output=False)
    origin = {"Origin": server.url}  # as a browser posting from the studio sends
    bad = httpx.post(f"{server.url}/runs/{run.id}/clone", data={"param.epochs": "three"}, headers=origin)
    assert bad.status_code == 400 and "epochs: &#39;three&#39; is not an integer" in bad.text
    assert 'value="three"' in bad.text  # what the user typed is kept for correcting
    assert len(ws.store.list_runs(experiment_name="forms", top_level_only=True)) == 1
    good = httpx.post(f"{server.url}/runs/{run.id}/clone", data={"param.epochs": "5"}, headers=origin)
    assert good.status_code == 303
    new_id = good.headers["location"].rsplit("/", 1)[1]
    assert ws.get_run(new_id).get_parameters() == {"epochs": 5}
    assert ws.store.get_run(new_id).data["submittedBy"] == {"auth": "off"}  # what the scheduler checks


def test_revoking_a_token_ends_its_open_streams(tmp_path: Path) -> None:
    import threading

    ws = Workspace.create(tmp_path / "ws")
    token, record = create_token(ws.store, "read")  # type: ignore[arg-type]
    with (
        running_server(ws.path, tmp_path / "server.log", auth=True) as server,
        httpx.Client(base_url=server.url, headers={"Origin": server.url}) as client,
    ):
        assert client.post("/login", data={"token": token}).status_code == 303  # the cookie is kept
        threading.Timer(1.0, ws.store.revoke_token, args=[record.token_id]).start()
        started = time.monotonic()
        events = sse_events(client, "/studio/api/live", until="signed-out", timeout=30)
        assert events[-1][0] == "signed-out" and time.monotonic() - started < 15


def test_the_studio_on_a_postgresql_workspace(tmp_path: Path, postgres_uri: str) -> None:
    ws = Workspace.create(tmp_path / "ws", tracking_uri=postgres_uri)
    exp = Experiment(ws, "on-postgres")
    ids = []
    for i in range(3):
        run = exp.start_logging(name=f"trial-{i}")
        ws.store.append_metrics(
            [MetricRow(run.id, "loss", "scalar", 0.0, value=(i + 1) / (s + 1), step=s) for s in range(3000)]
        )
        run.tag("size", str(i))
        run.complete()
        ids.append(run.id)
    with running_server(ws.path, tmp_path / "server.log") as server:
        page = httpx.get(
            f"{server.url}/runs", params=[("col", "min:loss"), ("sort", "min:loss"), ("desc", "0")]
        )
        assert page.status_code == 200
        assert [m for m in re.findall(r">(trial-\d)<", page.text)] == ["trial-0", "trial-1", "trial-2"]
        chart = httpx.get(f"{server.url}/studio/api/metrics", params={"run": ids[2], "name": "loss"}).json()
        series = chart["series"][0]
        assert series["count"] == 3000 and series["downsampled"] and max(series["y"]) == 3.0
        assert httpx.get(f"{server.url}/experiments").status_code == 200
        assert "size" in httpx.get(f"{server.url}/runs/{ids[0]}").text
