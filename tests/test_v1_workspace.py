"""Cloud set-up becomes local: v1's ways of naming a workspace open the project's local workspace.

Every test works in its own project folder (tmp_path, made the current folder) on real SQLite files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runyard import Workspace
from runyard.compat import V1ParameterIgnored
from runyard.core.authentication import (
    AzureCliAuthentication,
    InteractiveLoginAuthentication,
    MsiAuthentication,
    ServicePrincipalAuthentication,
)
from runyard.core.azure_identity import AzureIdentityMismatch
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.core.workspace_config import WorkspaceLinkIgnored
from runyard.data import Datastore
from runyard.environments.curated import CURATED
from runyard.errors import (
    ComputeTargetException,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    WorkspaceNotFound,
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def azure_config(
    folder: Path, name: str = "ws-one", *, scope: bool = False, file: str = "config.json"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if scope:
        body = {
            "Id": None,
            "Scope": f"/subscriptions/sub-1/resourceGroups/rg-1/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{name}",
        }
    else:
        body = {"subscription_id": "sub-1", "resource_group": "rg-1", "workspace_name": name}
    (folder / file).write_text(json.dumps(body))
    return folder / file


def recorded(ws: Workspace) -> dict[str, object]:
    return dict(json.loads((ws.path / "config.json").read_text()).get("azure", {}))


# -- Workspace(subscription_id, resource_group, workspace_name) ---------------------------------------


def test_azure_triple_opens_the_projects_local_workspace_and_says_where_once(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace("sub-1", "rg-1", "ws-one")
    assert ws.path == project / ".runyard"
    assert (ws.name, ws.subscription_id, ws.resource_group) == ("ws-one", "sub-1", "rg-1")
    assert (ws.location, ws.sku, ws.tags, ws.datasets) == ("local", "basic", {}, {})
    assert set(ws.environments) == set(CURATED)  # nothing registered: the curated table only
    assert recorded(ws) == {"subscription_id": "sub-1", "resource_group": "rg-1", "workspace_name": "ws-one"}
    err = capsys.readouterr().err
    assert f"Azure ML workspace 'ws-one' is the local runyard workspace at {ws.path}" in err

    again = Workspace("sub-1", "rg-1", "ws-one")
    assert again == ws and "Azure ML workspace" not in capsys.readouterr().err  # said once per process
    # runyard's own forms open the same folder and report the recorded names
    assert Workspace(ws.path).name == "ws-one" and Workspace(path=ws.path).subscription_id == "sub-1"


def test_a_subfolder_of_the_project_opens_the_same_workspace(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace("sub-1", "rg-1", "ws-one")
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    assert Workspace("sub-1", "rg-1", "ws-one").path == ws.path


def test_another_azure_name_opens_the_same_workspace_and_warns(project: Path) -> None:
    ws = Workspace("sub-1", "rg-1", "ws-one")
    with pytest.warns(AzureIdentityMismatch, match="'ws-two'.*records 'ws-one'"):
        other = Workspace("sub-1", "rg-1", "ws-two")
    assert other.path == ws.path and other.name == "ws-one"  # its records stay as they are
    assert recorded(other)["workspace_name"] == "ws-one"


def test_workspace_needs_a_folder_or_the_azure_names(project: Path) -> None:
    with pytest.raises(InvalidInputError, match="subscription_id, resource_group, workspace_name"):
        Workspace()
    with pytest.raises(InvalidInputError, match="workspace folder"):
        Workspace("sub-1", "rg-1")


def test_mistyped_keywords_say_what_was_meant(project: Path) -> None:
    with pytest.raises(TypeError, match="Did you mean 'workspace_name'"):
        Workspace("sub-1", "rg-1", worksapce_name="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Did you mean 'subscription_id'"):
        Workspace.get("ws-one", subscripton_id="sub-1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Did you mean 'exist_ok'"):
        Workspace.create("ws-one", exists_ok=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Did you mean '_file_name'"):
        Workspace.from_config(file_name="x.json")  # type: ignore[call-arg]
    assert not (project / ".runyard").exists()


def test_auth_objects_are_accepted_and_named_once(project: Path) -> None:
    auth = ServicePrincipalAuthentication("tenant", "app-id", "secret")
    with pytest.warns(V1ParameterIgnored, match="'auth'.*runyard token"):
        ws = Workspace("sub-1", "rg-1", "ws-one", auth=auth)
    assert ws.path == project / ".runyard"
    assert not hasattr(auth, "service_principal_password")  # the secret is not kept


# -- Workspace.get / Workspace.create ---------------------------------------------------------------


def test_get_takes_a_url_a_folder_or_a_v1_name(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    folder = Workspace.create(tmp_path / "elsewhere" / ".runyard")
    assert Workspace.get(str(folder.path)) == folder
    assert Workspace.get(folder.path.parent) == folder  # a project folder holding .runyard/
    assert Workspace.get("http://127.0.0.1:9").is_remote
    by_name = Workspace.get("ws-one", subscription_id="sub-1", resource_group="rg-1", location="westeurope")
    assert by_name.path == project / ".runyard"
    assert (by_name.name, by_name.location) == ("ws-one", "westeurope")
    with pytest.raises(WorkspaceNotFound):
        Workspace.get("./no-such-folder")  # looks like a path: not taken for a name


def test_create_with_a_v1_name_makes_the_projects_workspace(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace.create(
        "ws-one", subscription_id="sub-1", resource_group="rg-1", location="eastus", tags={"team": "a"}
    )
    assert ws.path == project / ".runyard"
    assert (ws.name, ws.location, ws.tags, ws.subscription_id) == ("ws-one", "eastus", {"team": "a"}, "sub-1")
    assert "is the local runyard workspace" in capsys.readouterr().err
    with pytest.raises(ConflictError, match="already exists"):
        Workspace.create("ws-one")
    assert Workspace.create("ws-one", exist_ok=True) == ws
    assert Workspace.get(ws.path).location == "eastus"  # recorded, not only on the object
    Workspace.create("ws-quiet", path=project / "quiet", show_output=False)
    assert "ws-quiet" not in capsys.readouterr().err


def test_create_keeps_runyards_folder_forms(project: Path, tmp_path: Path) -> None:
    assert Workspace.create(".runyard").path == project / ".runyard"
    assert Workspace.create(tmp_path / "a").path == tmp_path / "a"
    assert Workspace.create("sub/dir").path == project / "sub" / "dir"
    there = Workspace.create("ws-x", path=tmp_path / "b", subscription_id="s", resource_group="r")
    assert there.path == tmp_path / "b" and there.name == "ws-x" and recorded(there)["subscription_id"] == "s"
    for form in (
        Workspace.create(".runyard", exist_ok=True),
        Workspace.create(tmp_path / "a", exist_ok=True),
    ):
        assert form.subscription_id is None and form.location == "local"


def test_create_names_the_cloud_only_parameters_it_ignores(project: Path) -> None:
    with pytest.warns(V1ParameterIgnored, match="'storage_account'.*no Azure resources"):
        Workspace.create("ws-one", storage_account="/subscriptions/x/storage")


def test_create_records_the_default_compute_targets(project: Path, tmp_path: Path) -> None:
    """v1's get_default_compute_target answers None until create() was given a default target; a
    provisioning configuration creates v1's 'cpu-cluster' / 'gpu-cluster'."""
    plain = Workspace.create(tmp_path / "plain")
    assert plain.get_default_compute_target("CPU") is None and plain.get_default_compute_target("GPU") is None
    with pytest.raises(InvalidInputError, match="'CPU' or 'GPU'"):
        plain.get_default_compute_target("TPU")

    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2)
    ws = Workspace.create("ws-one", default_cpu_compute_target=config, default_gpu_compute_target="gpu-a")
    cpu = ws.get_default_compute_target("cpu")
    assert isinstance(cpu, AmlCompute) and (cpu.name, cpu.vm_size) == ("cpu-cluster", "STANDARD_D2_V2")
    assert "cpu-cluster" in ws.compute_targets
    with pytest.raises(ComputeTargetException, match=r"default GPU target 'gpu-a'.*ComputeTarget\.create"):
        ws.get_default_compute_target("GPU")  # named, never created
    ComputeTarget.create(ws, "gpu-a", AmlCompute.provisioning_configuration(max_nodes=1))
    reopened = Workspace.get(ws.path)
    assert reopened.get_default_compute_target("GPU").name == "gpu-a"  # recorded in config.json
    with pytest.raises(InvalidInputError, match="default_cpu_compute_target must be"):
        Workspace.create(tmp_path / "bad", default_cpu_compute_target=3)


# -- Workspace.from_config ------------------------------------------------------------------------


@pytest.mark.parametrize("place", [".azureml", "aml_config", ""])
@pytest.mark.parametrize("scope", [False, True])
def test_from_config_reads_azure_config_files(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    place: str,
    scope: bool,
) -> None:
    config_file = azure_config(project / place if place else project, scope=scope)
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    ws = Workspace.from_config()
    assert ws.path == project / ".runyard"  # the workspace of the folder the config belongs to, created now
    assert (ws.name, ws.subscription_id, ws.resource_group) == ("ws-one", "sub-1", "rg-1")
    assert f"(from {config_file}) is the local runyard workspace at {ws.path}" in capsys.readouterr().err
    assert Workspace.from_config() == ws  # the second time it is there


def test_from_config_follows_v1s_search_order(project: Path, tmp_path: Path) -> None:
    # v1: the place is the outer loop, so .azureml/ in an ancestor beats config.json in the start folder
    azure_config(project / ".azureml", "from-azureml")
    azure_config(project / "sub", "plain")
    assert Workspace.from_config(project / "sub").name == "from-azureml"
    # config.json before the legacy project.json, in the same place
    azure_config(tmp_path / "legacy" / ".azureml", "legacy", file="project.json")
    assert Workspace.from_config(tmp_path / "legacy").name == "legacy"
    # path may name the config file; _file_name picks another name
    named = azure_config(tmp_path / "named", "by-file", file="custom.json")
    assert Workspace.from_config(named).name == "by-file"
    assert Workspace.from_config(tmp_path / "named", _file_name="custom.json").name == "by-file"


def test_nearest_of_runyard_and_azure_config_wins(project: Path, tmp_path: Path) -> None:
    outer = Workspace.create(tmp_path / ".runyard")  # a workspace above the project
    azure_config(project / ".azureml")
    assert Workspace.from_config(project).path == project / ".runyard"  # the project's own config is nearer
    (project / "inner").mkdir()
    inner = Workspace.create(project / "inner" / ".runyard")
    assert Workspace.from_config(project / "inner") == inner  # a nearer .runyard is never bypassed
    assert Workspace.from_config(tmp_path) == outer


def test_from_config_skips_a_plain_config_json_that_is_not_azures(project: Path) -> None:
    (project / "config.json").write_text('{"batch_size": 32}')
    with pytest.raises(WorkspaceNotFound, match="No runyard workspace found"):
        Workspace.from_config()
    (project / ".azureml").mkdir()
    (project / ".azureml" / "config.json").write_text('{"workspace_name": "half"}')
    with pytest.raises(InvalidInputError, match="needs subscription_id, resource_group and workspace_name"):
        Workspace.from_config()


def test_write_config_is_read_back_by_from_config(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.create(tmp_path / "store" / "ws")
    ws.write_config(project)
    written = json.loads((project / ".azureml" / "config.json").read_text())
    assert {written["subscription_id"], written["resource_group"], written["workspace_name"]} >= {
        "local",
        "ws",
    }
    assert Workspace.from_config(project) == ws  # not a new project workspace: the config points back
    assert ws.subscription_id == "local"

    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.chdir(second)
    named = Workspace("sub-1", "rg-1", "ws-one")
    named.write_config(file_name="other.json")
    again = json.loads((second / ".azureml" / "other.json").read_text())
    assert (again["subscription_id"], again["workspace_name"]) == ("sub-1", "ws-one")
    assert Workspace.from_config(_file_name="other.json") == named


def test_an_azure_config_link_is_followed_only_inside_its_project_or_when_vouched_for(
    tmp_path: Path, project: Path
) -> None:
    """A config.json travels with its project, so its runyard_workspace link may not lead a project
    into a workspace elsewhere, unless that workspace wrote this very file (write_config)."""
    inner = Workspace.create(project / "envs" / "ws")
    azure_config(project / ".azureml")
    config_file = project / ".azureml" / "config.json"
    config_file.write_text(
        json.dumps({**json.loads(config_file.read_text()), "runyard_workspace": "envs/ws"})
    )
    assert Workspace.from_config(project) == inner  # inside the project: followed

    elsewhere = Workspace.create(tmp_path / "elsewhere")
    config_file.write_text(
        json.dumps({**json.loads(config_file.read_text()), "runyard_workspace": "../elsewhere"})
    )
    with pytest.warns(WorkspaceLinkIgnored, match="outside its project.*write_config"):
        ws = Workspace.from_config(project)
    assert ws.path == project / ".runyard"  # the project's own, not `elsewhere`

    vouched = tmp_path / "vouched"
    elsewhere.write_config(vouched)  # the workspace lists the file it wrote, and follows it
    assert Workspace.from_config(vouched) == elsewhere
    copy = tmp_path / "copy"
    (copy / ".azureml").mkdir(parents=True)
    (copy / ".azureml" / "config.json").write_text((vouched / ".azureml" / "config.json").read_text())
    with pytest.warns(WorkspaceLinkIgnored):  # the same text in another file is not vouched for
        assert Workspace.from_config(copy).path == copy / ".runyard"


def test_a_damaged_workspace_config_is_reported_not_overwritten(project: Path) -> None:
    ws = Workspace.create(".runyard")
    (ws.path / "config.json").write_text('["not", "an", "object"]')
    with pytest.raises(InvalidInputError, match=r"holds a JSON list.*runyard init"):
        Workspace.get(ws.path)
    with pytest.raises(InvalidInputError, match="holds a JSON list"):
        ws.write_config(project / "out")  # read-modify-write refuses too, rather than writing over it
    (ws.path / "config.json").write_text(
        '{"tracking_uri": "sqlite:///runyard.db", "artifact_root": "a", "name": 5}'
    )
    with pytest.raises(InvalidInputError, match="'name' must be a string"):
        Workspace.get(ws.path)
    (ws.path / "config.json").write_text(
        '{"tracking_uri": "sqlite:///runyard.db", "artifact_root": "a", "tags": "x"}'
    )
    with pytest.raises(InvalidInputError, match="'tags' must be an object"):
        Workspace.get(ws.path)


# -- datastores, MLflow, details ------------------------------------------------------------------


def test_the_default_datastore_is_a_folder_of_the_artifact_store(project: Path) -> None:
    ws = Workspace.create(".runyard")
    store = ws.get_default_datastore()
    assert (store.name, store.datastore_type, store.workspace) == ("workspaceblobstore", "AzureBlob", ws)
    assert ws.datastores == {
        "workspaceblobstore": store,
        "workspacefilestore": Datastore(ws, "workspacefilestore"),
    }
    assert Datastore.get(ws, "WorkspaceBlobStore") == store == Datastore(ws) == Datastore.get_default(ws)
    assert store.local_path("a/b") == Path(ws.artifact_root) / "datastores" / "workspaceblobstore" / "a" / "b"
    ws.set_default_datastore("workspaceblobstore")
    with pytest.raises(NotFoundError, match=r"'mystore'.*'workspaceblobstore'.*register_fsspec"):
        ws.set_default_datastore("mystore")
    with pytest.raises(NotFoundError, match="'mystore'"):
        Datastore.get(ws, "mystore")
    with pytest.raises(InvalidInputError, match="leaves datastore"):
        store.local_path("../../runyard.db")


def test_mlflow_never_gets_the_database_uri(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.create(".runyard")
    uri = ws.get_mlflow_tracking_uri()  # the plugin's address: MLflow never sees the database URI
    assert uri == f"runyard:{ws.path}" and "sqlite" not in uri and "runyard.db" not in uri
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = Workspace.get("http://127.0.0.1:9/")
    assert served.get_mlflow_tracking_uri() == "http://127.0.0.1:9"


def test_details_carry_v1_keys(project: Path) -> None:
    ws = Workspace("sub-1", "rg-1", "ws-one")
    details = ws.get_details()
    assert details["id"].endswith(
        "/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-one"
    )
    assert (details["name"], details["location"], details["path"]) == ("ws-one", "local", str(ws.path))


def test_authentication_classes_give_the_runyard_token_header(monkeypatch: pytest.MonkeyPatch) -> None:
    for auth in (
        InteractiveLoginAuthentication(),
        ServicePrincipalAuthentication("t", "i", "p"),
        AzureCliAuthentication(),
        MsiAuthentication(),
    ):
        assert auth.get_authentication_header() == {}
    monkeypatch.setenv("RUNYARD_TOKEN", "ry_abc")
    assert InteractiveLoginAuthentication().get_authentication_header() == {"Authorization": "Bearer ry_abc"}
    with pytest.warns(V1ParameterIgnored, match="'tenant_id'"):
        InteractiveLoginAuthentication(tenant_id="t")
