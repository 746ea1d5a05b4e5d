"""`make screenshots`: fill a workspace with real runs, serve the studio, and photograph each page
into docs/images/ with headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

What it records: the demo pipeline three times (first run, fully reused, learning rate changed), a
learning-rate sweep of the example training script, a pipeline whose train step fails, and a pipeline
held running on one slot so the compute page has a queued step.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent / "docs" / "images"
sys.path.insert(0, str(HERE))

from demo import build  # noqa: E402

from runyard import Experiment, ScriptRunConfig, Workspace  # noqa: E402
from runyard.pipeline import Pipeline, PythonScriptStep  # noqa: E402
from runyard.server.auth import create_token  # noqa: E402
from runyard.studio.headless import launch_chromium  # noqa: E402

HOLD = """
import pathlib, sys, time
print("waiting for", sys.argv[1], flush=True)
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.1)
"""


def record(ws: Workspace, tmp: Path) -> dict[str, str]:
    first = build(ws).submit("demo", show_output=False)
    first.wait_for_completion(show_output=False)
    build(ws).submit("demo", show_output=False).wait_for_completion(show_output=False)
    third = build(ws).submit("demo", pipeline_parameters={"learning_rate": 0.1}, show_output=False)
    third.wait_for_completion(show_output=False)

    sweep = Experiment(ws, "lr-sweep")
    runs = [
        sweep.submit(
            ScriptRunConfig(HERE / "train", "train.py", arguments=["--lr", lr, "--epochs", 60]),
            tags={"sweep": "lr"},
        )
        for lr in (0.05, 0.2, 0.8, 2.0)
    ]
    for run in runs:
        run.wait_for_completion()

    broken = tmp / "broken"
    broken.mkdir()
    (broken / "prepare.py").write_text("print('rows: 2000')\n")
    (broken / "train.py").write_text(
        "import math\nprint('epoch 0  loss 0.6931')\nprint('epoch 1  loss', math.log(-1.0))\n"
    )
    steps = [
        PythonScriptStep("prepare.py", name="prepare", source_directory=broken),
        PythonScriptStep("train.py", name="train", source_directory=broken),
    ]
    steps[1].run_after(steps[0])
    failed = Pipeline(ws, steps).submit("nightly", show_output=False)
    failed.wait_for_completion(show_output=False, raise_on_error=False)

    hold = tmp / "hold"
    hold.mkdir()
    (hold / "hold.py").write_text(HOLD)
    go = tmp / "go"
    busy = Pipeline(
        ws,
        [
            PythonScriptStep(
                "hold.py", name=f"shard{i}", source_directory=hold, arguments=[str(go)], allow_reuse=False
            )
            for i in range(3)
        ],
    ).submit("batch-scoring", show_output=False)
    deadline = time.time() + 60
    while time.time() < deadline:
        states = {r.status for r in ws.store.list_descendants(busy.id, recursive=False)}
        if "Queued" in states and "Running" in states:
            break
        time.sleep(0.2)
    train = third.find_step_run("train")[0]
    return {
        "third": third.id,
        "train": train.id,
        "failed": failed.id,
        "failed_train": failed.find_step_run("train")[0].id,
        "sweep": ",".join(r.id for r in runs),
        "go": str(go),
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    os.environ["RUNYARD_LOCAL_SLOTS"] = "1"
    IMAGES.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="runyard-shots-"))
    ws = Workspace.create(tmp / "ws")
    ids = record(ws, tmp)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "runyard", "-w", str(ws.path), "server", "--port", str(port), "--auth"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    token, _ = create_token(ws.store, "write", name="screenshots")  # type: ignore[arg-type]
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        sweep = ids["sweep"].split(",")
        shots = [
            ("experiments", "/experiments"),
            ("runs", "/runs?col=last:loss&col=max:accuracy&col=last:learning_rate&sort=max:accuracy"),
            ("compare", "/compare?" + "&".join(f"run={r}" for r in sweep)),
            ("run-overview", f"/runs/{sweep[2]}"),
            ("run-metrics", f"/runs/{sweep[2]}?tab=metrics"),
            ("pipeline", f"/runs/{ids['third']}?step={ids['train']}&tab=overview"),
            ("failed-step-log", f"/runs/{ids['failed']}?step={ids['failed_train']}&tab=files"),
            ("clone", f"/runs/{ids['third']}/clone"),
            ("compute", "/compute"),
        ]
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.goto(base + "/experiments")  # --auth: the studio asks for a token first
            page.get_by_label("Workspace token").fill(token)
            page.screenshot(path=str(IMAGES / "studio-login.png"))
            print("docs/images/studio-login.png  ← /login")
            page.get_by_role("button", name="Sign in").click()
            for name, path in shots:
                page.goto(base + path)
                if "metrics" in path or "compare" in path:
                    page.wait_for_selector(".chart .main-svg")  # plotly has drawn
                page.wait_for_timeout(800)
                page.screenshot(path=str(IMAGES / f"studio-{name}.png"), full_page=False)
                print(f"docs/images/studio-{name}.png  ← {path}")
            browser.close()
    finally:
        Path(ids["go"]).touch()
        server.terminate()
        server.wait(timeout=30)
        time.sleep(3)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
