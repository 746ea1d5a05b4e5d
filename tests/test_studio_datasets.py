"""The studio's Datasets pages and run lineage in a real browser: Debian's Chromium (headless, via
Playwright) against a real `runyard server` process on 127.0.0.1.

The workspace is filled through the Python API: datasets registered from files on the workspace's
datastore (and on S3 via moto), a real script run that reads a dataset as a named input, a real pipeline
whose step registers its output on completion, and lineage rows written through the store for runs
that produced data outside the engine.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import SourceDir, clean_settings, kill_strays
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.data.abstract_dataset import AbstractDataset
from runyard.data.dataset import Dataset
from runyard.data.datastore import Datastore
from runyard.data.hashing import hash_datastore_path
from runyard.pipeline import OutputFileDatasetConfig, Pipeline, PythonScriptStep
from runyard.server.auth import create_token
from runyard.store.records import DatasetUse
from s3_fixture import s3_client, s3_datastore
from server_process import ServerProcess, running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")
expect = pytest.importorskip("playwright.sync_api").expect

EVIL = "pics <script>alert(1)"  # dataset names are user input (no '/': it would be a path)
EVIL_TAG = "<img src=x onerror=alert(2)>"
EVIL_FILE = "<img src=x onerror=alert(3)>.txt"
SECRET = "SECRET-never-on-a-page"
JAN = "day,amount,region\n1,10.5,north\n2,20.25,south\n"
FEB = "day,amount,region\n3,30.0,east\n"

READ_SALES = """
from runyard import Run
frame = Run.get_context().input_datasets["sales"].to_pandas_dataframe()
print("ROWS", len(frame))
"""


def upload(ws: Workspace, tmp_path: Path, target: str, files: dict[str, str]) -> None:
    folder = tmp_path / f"upload-{target}"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    ws.get_default_datastore().upload(str(folder), target_path=target, overwrite=True, show_progress=False)


@dataclass
class Seeded:
    ws: Workspace
    server: ServerProcess
    sales: list[AbstractDataset]  # version 1, version 2
    reader: str  # the script run that read sales version 2
    producer: str  # the run recorded as producing sales version 1
    raw_reader: str  # a run that read the datastore path 'sales' (unregistered data)

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def seed(tmp_path: Path) -> Iterator[Seeded]:
    """Two versions of a tabular dataset, a file dataset, an fsspec datastore, lineage rows, a real
    script run that read version 2, and a server over it all (seconds: a job and a server process)."""
    ws = Workspace.create(tmp_path / "ws")
    store = ws.get_default_datastore()
    upload(ws, tmp_path, "sales", {"jan.csv": JAN})
    first = Dataset.Tabular.from_delimited_files((store, "sales/*.csv")).register(
        ws, "sales", description="january", tags={"team": "shop"}
    )
    upload(ws, tmp_path, "sales", {"feb.csv": FEB})
    second = Dataset.Tabular.from_delimited_files((store, "sales/*.csv")).register(
        ws, "sales", description="with february", tags={"team": "shop", "month": "2"}, create_new_version=True
    )
    upload(ws, tmp_path, "pics", {**{f"p{i:03d}.txt": str(i) for i in range(150)}, EVIL_FILE: "odd"})
    Dataset.File.from_files((store, "pics")).register(ws, EVIL, tags={"owner": EVIL_TAG})
    Datastore.register_fsspec(
        ws,
        "lake",
        "s3://bucket/prefix",
        key="AKIA-TEST",
        secret=SECRET,
        client_kwargs={"endpoint_url": "http://127.0.0.1:9"},
    )

    producer = Experiment(ws, "prepare-data").start_logging()
    producer.complete()
    raw_reader = Experiment(ws, "raw-reads").start_logging()
    raw_reader.complete()
    ws.store.record_dataset_uses(
        [
            DatasetUse(producer.id, "output", "cleaned", str(first.content_hash), first.id),
            DatasetUse(
                raw_reader.id,
                "input",
                "raw",
                hash_datastore_path(ws, "workspaceblobstore", "sales")[0],
                None,
                {"datastore": "workspaceblobstore", "path": "sales", "mode": "download"},
            ),
        ]
    )
    src = SourceDir(tmp_path / "src").gen({"read.py": READ_SALES})
    reader = Experiment(ws, "analysis").submit(
        ScriptRunConfig(src, "read.py", arguments=[second.as_named_input("sales")])
    )
    assert reader.wait_for_completion()["status"] == "Completed"
    with running_server(ws.path, tmp_path / "server.log") as server:
        yield Seeded(ws, server, [first, second], reader.id, producer.id, raw_reader.id)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Seeded]:
    """One seeded workspace and server shared by the tests that only read the pages; a test that
    changes the workspace (deletes a file, adds runs and datasets) takes `own_seeded`."""
    root = tmp_path_factory.mktemp("seeded")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_settings(monkeypatch, env_cache)
        monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
        with seed(root) as seeded:
            yield seeded
    kill_strays(root)


@pytest.fixture
def own_seeded(tmp_path: Path) -> Iterator[Seeded]:
    with seed(tmp_path) as seeded:
        yield seeded


def rows(page, selector: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    found = []
    for row in page.locator(f"{selector} tbody tr").all():
        found.append([c.strip() for c in row.locator("td").all_inner_texts()])
    return found


def no_dialogs(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Collects alert() calls: an unescaped name would run one."""
    opened: list[str] = []

    def record(dialog) -> None:  # type: ignore[no-untyped-def]
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return opened


def test_the_datasets_page_lists_every_dataset_its_datastores_and_finds_by_name(seeded: Seeded, page) -> None:
    dialogs = no_dialogs(page)
    page.goto(f"{seeded.url}/experiments")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    listed = rows(page, "table.datasets")
    assert [r[0] for r in listed] == [EVIL, "sales"]  # by name, each once, written as text
    pics, sales = listed
    assert sales[1:5] == [
        "2",
        "tabular",
        "2",
        f"{len(JAN) + len(FEB)} B",
    ]  # latest version, kind, files, size
    assert sales[6:] == ["with february", "team=shop month=2"]
    assert pics[1:4] == ["1", "file", "151"] and pics[7] == f"owner={EVIL_TAG}"

    page.get_by_role("searchbox", name="Name").fill("SAL")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(f"{seeded.url}/datasets?q=SAL")
    assert [r[0] for r in rows(page, "table.datasets")] == ["sales"]
    page.get_by_role("searchbox", name="Name").fill("nothing-like-this")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("section[aria-label='Registered datasets'] .empty")).to_contain_text(
        "No dataset name contains"
    )

    stores = rows(page, "table.datastores")
    assert stores[0][0] == "workspaceblobstore" and stores[0][3] == "default"
    assert stores[1][0] == "workspacefilestore" and stores[1][3] != "default"
    assert stores[2][:3] == ["lake", "fsspec", "s3://bucket/prefix"]
    assert SECRET not in page.content() and "AKIA-TEST" not in page.content()
    assert dialogs == []


def test_a_dataset_page_shows_versions_files_a_preview_and_the_runs_of_each_version(
    seeded: Seeded, page
) -> None:
    page.goto(f"{seeded.url}/datasets")
    page.get_by_role("link", name="sales", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("sales version 2")
    assert [r[0] for r in rows(page, "table.versions")] == ["2", "1"]
    assert rows(page, "table.versions")[0][6] == "1 run"  # version 2 was read by one run
    expect(page.locator("table.preview-rows thead")).to_contain_text("amount float64")
    assert rows(page, "table.preview-rows") == [  # files in path order: feb.csv, then jan.csv
        ["3", "30", "east"],
        ["1", "10.5", "north"],
        ["2", "20.25", "south"],
    ]
    files = rows(page, "table.dataset-files")
    assert [f[0] for f in files] == ["workspaceblobstore:sales/feb.csv", "workspaceblobstore:sales/jan.csv"]
    assert files[1][2] == str(seeded.sales[0]._record.files[0]["sha256"])[:12]  # type: ignore[union-attr]
    used_by = page.get_by_role("table", name="Used by")
    expect(used_by.get_by_role("link", name="analysis #1")).to_be_visible()

    page.get_by_role("combobox", name="Version").select_option("1")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{seeded.url}/datasets/sales?version=1")
    expect(page.get_by_role("heading", level=1)).to_have_text("sales version 1")
    assert rows(page, "table.preview-rows") == [["1", "10.5", "north"], ["2", "20.25", "south"]]
    assert [f[0] for f in rows(page, "table.dataset-files")] == ["workspaceblobstore:sales/jan.csv"]
    expect(
        page.get_by_role("table", name="Produced by").get_by_role("link", name="prepare-data #1")
    ).to_be_visible()
    expect(page.get_by_role("table", name="Used by")).to_contain_text("No run has read this version yet.")

    # from a dataset to the run that read it, and back through the run's inputs
    page.goto(f"{seeded.url}/datasets/sales")
    page.get_by_role("table", name="Used by").get_by_role("link", name="analysis #1").click()
    expect(page).to_have_url(f"{seeded.url}/runs/{seeded.reader}")
    inputs = page.get_by_role("table", name="Inputs and outputs")
    assert rows(page, "table.run-data")[0][:3] == ["input", "sales", "sales version 2"]
    inputs.get_by_role("link", name="sales version 2").click()
    expect(page).to_have_url(f"{seeded.url}/datasets/sales?version=2")
    expect(page.get_by_role("heading", level=1)).to_have_text("sales version 2")

    page.goto(f"{seeded.url}/runs/{seeded.raw_reader}")  # unregistered data: the datastore path
    raw = rows(page, "table.run-data")
    assert raw[0][:3] == ["input", "raw", "workspaceblobstore:sales (download)"]
    page.goto(f"{seeded.url}/runs/{seeded.producer}")
    producer = page.get_by_role("table", name="Inputs and outputs")
    producer.get_by_role("link", name="sales version 1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("sales version 1")


def test_a_version_whose_files_are_gone_shows_why_and_the_rest_of_the_page(own_seeded: Seeded, page) -> None:
    seeded = own_seeded
    seeded.ws.get_default_datastore().local_path("sales/jan.csv").unlink()
    page.goto(f"{seeded.url}/datasets/sales?version=1")
    expect(page.get_by_role("alert")).to_contain_text("no longer resolves")
    expect(page.get_by_role("alert")).to_contain_text("sales/jan.csv")
    assert page.locator("table.preview-rows").count() == 0
    assert [f[0] for f in rows(page, "table.dataset-files")] == [
        "workspaceblobstore:sales/jan.csv"
    ]  # as recorded
    expect(page.get_by_role("table", name="Produced by")).to_contain_text("prepare-data #1")


def test_a_file_dataset_pages_its_files_and_every_name_stays_text(seeded: Seeded, page) -> None:
    dialogs = no_dialogs(page)
    page.goto(f"{seeded.url}/datasets")
    page.get_by_role("link", name=EVIL, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{EVIL} version 1")
    assert page.get_by_role("region", name="Preview").count() == 0  # a file dataset has no rows
    expect(page.locator("section[aria-label='Files'] .count")).to_have_text(
        "151 files · 1–100 shown · page 1 of 2"
    )
    first = [f[0] for f in rows(page, "table.dataset-files")]
    assert len(first) == 100 and first[0] == f"workspaceblobstore:pics/{EVIL_FILE}"  # '<' sorts first
    page.get_by_role("link", name="Next ›").click()
    expect(page).to_have_url(re.compile(r"version=1&fpage=2$"))
    second = [f[0] for f in rows(page, "table.dataset-files")]
    assert len(second) == 51 and second[-1] == "workspaceblobstore:pics/p149.txt"
    assert len(set(first + second)) == 151
    expect(page.get_by_role("table", name="Tags")).to_contain_text(EVIL_TAG)
    assert dialogs == []

    source = httpx.get(f"{seeded.url}/datasets").text  # escaped by the templates, not just by the browser
    assert html.escape(EVIL, quote=False) in source and EVIL not in source
    assert EVIL_TAG not in source


def test_pipeline_steps_show_what_they_read_and_wrote(own_seeded: Seeded, page, tmp_path: Path) -> None:
    seeded = own_seeded
    ws = seeded.ws
    make = SourceDir(tmp_path / "make").gen(
        {
            "make.py": "import pathlib, sys\n(pathlib.Path(sys.argv[1]) / 'part-0.csv').write_text('k,v\\na,1\\nb,2\\n')\n"
        }
    )
    use = SourceDir(tmp_path / "use").gen({"read.py": READ_SALES})
    table = OutputFileDatasetConfig("table").read_delimited_files().register_on_complete("scores")
    steps = [
        PythonScriptStep("make.py", name="make", arguments=[table], source_directory=make),
        PythonScriptStep(
            "read.py",
            name="use",
            arguments=[seeded.sales[1].as_named_input("sales"), table.as_input("table")],
            source_directory=use,
        ),
    ]
    run = Pipeline(ws, steps).submit("nightly", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"

    page.goto(f"{seeded.url}/runs/{run.id}")
    data = rows(page, "table.run-data")
    assert ["make", "output", "table", "scores version 1"] in [r[:4] for r in data]
    assert ["use", "input", "sales", "sales version 2"] in [r[:4] for r in data]
    page.get_by_role("table", name="Inputs and outputs").get_by_role("link", name="use").first.click()
    expect(page.get_by_role("heading", level=2, name="Step use")).to_be_visible()
    step_rows = rows(page, "table.run-data")
    assert ("input", "sales") in {(r[0], r[1]) for r in step_rows}
    assert all(len(r) == 4 for r in step_rows)  # a step page lists its own rows: no Step column
    page.get_by_role("table", name="Inputs and outputs").get_by_role("link", name="sales version 2").click()
    expect(page.get_by_role("table", name="Used by").get_by_role("link", name="use")).to_be_visible()

    page.goto(f"{seeded.url}/datasets/scores")
    expect(page.get_by_role("table", name="Produced by").get_by_role("link", name="make")).to_be_visible()
    assert rows(page, "table.preview-rows") == [["a", "1"], ["b", "2"]]


def test_a_tabular_dataset_on_s3_previews_through_the_server(
    s3_bucket: tuple[str, str], tmp_path: Path, page
) -> None:
    endpoint, bucket = s3_bucket
    ws = Workspace.create(tmp_path / "ws")
    lake = s3_datastore(ws, "lake", endpoint, bucket)
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "rows.csv").write_text("city,people\noslo,700000\nbergen,290000\n")
    lake.upload(str(folder), target_path="cities", show_progress=False)
    Dataset.Tabular.from_delimited_files((lake, "cities/*.csv")).register(ws, "cities")
    with running_server(ws.path, tmp_path / "server.log") as server:
        page.goto(f"{server.url}/datasets/cities")
        assert rows(page, "table.preview-rows") == [["oslo", "700000"], ["bergen", "290000"]]
        assert [f[0] for f in rows(page, "table.dataset-files")] == ["lake:cities/rows.csv"]
        client = s3_client(endpoint)
        client.delete_object(Bucket=bucket, Key="data/cities/rows.csv")
        page.reload()
        expect(page.get_by_role("alert")).to_contain_text("cities/rows.csv")
        expect(page.get_by_role("heading", level=1)).to_have_text("cities version 1")


def test_dataset_pages_need_sign_in_when_the_server_has_auth(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    ws.get_default_datastore().upload(str(folder), target_path="a", show_progress=False)
    Dataset.Tabular.from_delimited_files((ws.get_default_datastore(), "a/a.csv")).register(ws, "a")
    token, _ = create_token(ws.store, "read")  # type: ignore[arg-type]
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        for path in ("/datasets", "/datasets/a?version=1"):
            refused = httpx.get(server.url + path)
            assert refused.status_code == 303
            assert refused.headers["location"].startswith("/login?next=%2Fdatasets")
            allowed = httpx.get(server.url + path, cookies={"runyard_studio": token})
            assert allowed.status_code == 200 and 'href="/datasets/a' in allowed.text


def test_dataset_pages_over_http_on_sqlite_and_postgresql(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    upload(ws, tmp_path, "sales", {"jan.csv": JAN})
    sales = Dataset.Tabular.from_delimited_files((ws.get_default_datastore(), "sales/jan.csv")).register(
        ws,
        "sales 100%?#",  # URL characters in a name: its links must still lead to it
    )
    run = Experiment(ws, "lineage").start_logging()
    run.complete()
    ws.store.record_dataset_uses([DatasetUse(run.id, "input", "sales", str(sales.content_hash), sales.id)])
    with (
        running_server(ws.path, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        listing = http.get("/datasets")
        link = re.search(r'href="(/datasets/[^"]+)">sales 100%\?#</a>', listing.text)
        assert listing.status_code == 200 and link is not None
        page = http.get(html.unescape(link.group(1)))
        assert page.status_code == 200 and "sales 100%?# <span" in page.text
        assert "<td>north</td>" in page.text and "lineage #1" in page.text
        run_page = http.get(f"/runs/{run.id}").text
        assert f'href="{link.group(1)}?version=1">sales 100%?# version 1</a>' in run_page
        assert http.get("/datasets/no-such-set").status_code == 404
        wrong = http.get(f"{html.unescape(link.group(1))}?version=7")
        assert wrong.status_code == 404 and "has no version 7; its versions are 1" in html.unescape(
            wrong.text
        )
        assert http.get(f"{html.unescape(link.group(1))}?version=x").status_code == 400
