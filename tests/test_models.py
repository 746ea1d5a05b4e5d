"""The model registry: versions, lookups, downloads, and model paths from inside a submitted script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, Model, ModelNotFoundException, ScriptRunConfig, Workspace
from runyard.errors import InvalidInputError, ModelNotFound


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_register_a_file_twice_gives_versions_1_and_2(workspace: Workspace, tmp_path: Path) -> None:
    first = Model.register(
        workspace,
        _file(tmp_path / "v1" / "model.txt", "weights-1"),
        "digits",
        tags={"stage": "dev"},
        properties={"acc": "0.9"},
        description="first try",
        model_framework=Model.Framework.SCIKITLEARN,
    )
    second = Model.register(workspace, str(_file(tmp_path / "v2" / "model.txt", "weights-2")), "digits")
    assert (first.version, second.version) == (1, 2)
    assert (first.id, second.id) == ("digits:1", "digits:2")
    assert first.tags == {"stage": "dev"} and first.properties == {"acc": "0.9"}
    assert first.description == "first try"
    assert first.model_framework == "ScikitLearn"
    assert first.run_id is None

    latest = Model(workspace, "digits")
    assert latest.version == 2
    assert Path(latest.url).read_text() == "weights-2"
    v1 = Model(workspace, "digits", version=1)
    assert v1.version == 1 and v1.tags == {"stage": "dev"}
    assert Path(v1.url).read_text() == "weights-1"
    assert Model(workspace, id="digits:1").version == 1
    # The registry holds a copy: changing the original file afterwards changes nothing.
    (tmp_path / "v1" / "model.txt").write_text("changed")
    assert Path(Model(workspace, "digits", version=1).url).read_text() == "weights-1"


def test_register_a_folder(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "model_dir"
    _file(folder / "weights.bin", "w")
    _file(folder / "config" / "params.json", '{"depth": 3}')
    model = Model.register(workspace, folder, "tree")
    assert model.version == 1
    again = Model.register(workspace, folder, "tree", child_paths=["weights.bin"])
    assert again.version == 2

    out = Path(model.download(str(tmp_path / "dl1")))
    assert out.name == "model_dir" and out.is_dir()
    assert (out / "weights.bin").read_text() == "w"
    assert json.loads((out / "config" / "params.json").read_text()) == {"depth": 3}

    only_weights = Path(again.download(str(tmp_path / "dl2")))
    assert sorted(p.relative_to(only_weights).as_posix() for p in only_weights.rglob("*")) == ["weights.bin"]


def test_model_list_and_workspace_models(workspace: Workspace, tmp_path: Path) -> None:
    src = _file(tmp_path / "m.txt", "m")
    Model.register(workspace, src, "alpha", tags={"team": "a"})
    Model.register(workspace, src, "alpha")
    Model.register(workspace, src, "beta")
    everything = Model.list(workspace)
    assert sorted((m.name, m.version) for m in everything) == [("alpha", 1), ("alpha", 2), ("beta", 1)]
    assert sorted(m.version for m in Model.list(workspace, name="alpha")) == [1, 2]
    assert [(m.name, m.version) for m in Model.list(workspace, name="alpha", latest=True)] == [("alpha", 2)]
    assert [(m.name, m.version) for m in Model.list(workspace, tags=["team"])] == [("alpha", 1)]
    assert Model.list(workspace, name="gamma") == []
    assert {n: m.version for n, m in workspace.models.items()} == {"alpha": 2, "beta": 1}


def test_download(workspace: Workspace, tmp_path: Path) -> None:
    model = Model.register(workspace, _file(tmp_path / "src" / "model.pkl", "pickled"), "dl")
    target = tmp_path / "target"
    target.mkdir()
    path = model.download(str(target))
    assert Path(path) == target / "model.pkl"
    assert Path(path).read_text() == "pickled"
    with pytest.raises(InvalidInputError, match="exist_ok"):
        model.download(str(target))
    Path(path).write_text("local edit")
    assert Path(model.download(str(target), exist_ok=True)).read_text() == "pickled"


def test_unknown_models_raise_model_not_found(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="'nope'"):
        Model(workspace, "nope")
    Model.register(workspace, _file(tmp_path / "a.txt", "a"), "known")
    with pytest.raises(ModelNotFound, match="version 7"):
        Model(workspace, "known", version=7)
    with pytest.raises(ModelNotFoundException):
        Model(workspace, id="known:9")
    with pytest.raises(ModelNotFound):
        Model.get_model_path("nope", _workspace=workspace)
    with pytest.raises(ModelNotFound):
        Model.get_model_path("known", version=2, _workspace=workspace)


def test_bad_register_and_lookup_arguments(workspace: Workspace, tmp_path: Path) -> None:
    src = _file(tmp_path / "a.txt", "a")
    Model.register(workspace, src, "ok")
    with pytest.raises(InvalidInputError, match="version must be an int"):
        Model.get_model_path("ok", version="1", _workspace=workspace)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="version must be an int"):
        Model.get_model_path("ok", version=1.0, _workspace=workspace)  # type: ignore[arg-type]
    # The same rule for the constructor, on every database (PostgreSQL used to fail with a raw SQL error).
    with pytest.raises(InvalidInputError, match="version must be an int"):
        Model(workspace, "ok", version="1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="integer version"):
        Model(workspace, id="ok:latest")
    for bad_name in ("", "has space", "-dash-first", "x" * 256, "a/b"):
        with pytest.raises(InvalidInputError, match="not allowed"):
            Model.register(workspace, src, bad_name)
    with pytest.raises(InvalidInputError, match="does not exist"):
        Model.register(workspace, tmp_path / "missing.pkl", "ok")
    with pytest.raises(InvalidInputError):
        Model(workspace)
    assert [m.version for m in Model.list(workspace)] == [1]
    assert Model.get_model_path("ok", version=1, _workspace=workspace).endswith("a.txt")


def test_get_model_path_inside_a_submitted_script(
    workspace: Workspace, source_dir: SourceDir, tmp_path: Path
) -> None:
    Model.register(workspace, _file(tmp_path / "one" / "model.txt", "version one"), "served")
    Model.register(workspace, _file(tmp_path / "two" / "model.txt", "version two"), "served")
    source_dir.gen(
        {
            "score.py": """
                import json, os
                from runyard import Model
                latest = Model.get_model_path("served")
                first = Model.get_model_path("served", version=1)
                result = {
                    "latest": latest,
                    "latest_text": open(latest).read(),
                    "first": first,
                    "first_text": open(first).read(),
                }
                try:
                    Model.get_model_path("not-registered")
                except Exception as exc:
                    result["missing"] = type(exc).__name__
                os.makedirs("outputs", exist_ok=True)
                with open("outputs/resolved.json", "w") as f:
                    json.dump(result, f)
                print("LATEST " + latest)
            """
        }
    )
    run = Experiment(workspace, "scoring").submit(ScriptRunConfig(source_dir, "score.py"))
    run.wait_for_completion()
    result = json.loads(Path(run.download_file("outputs/resolved.json", tmp_path / "r.json")).read_text())
    assert result["latest_text"] == "version two"
    assert result["first_text"] == "version one"
    assert result["missing"] == "ModelNotFound"
    # Inside a job the script gets its own copy (v1's azureml-models/ cache), not the registry's file.
    assert Path(result["latest"]).parts[-4:] == ("azureml-models", "served", "2", "model.txt")
    assert Path(result["first"]).parts[-4:] == ("azureml-models", "served", "1", "model.txt")
    assert Path(result["latest"]) != Path(Model(workspace, "served").url)
    assert Path(Model(workspace, "served").url).read_text() == "version two"
    assert f"LATEST {result['latest']}" in run.read_log().decode()


def test_register_model_from_a_completed_run(
    workspace: Workspace, source_dir: SourceDir, tmp_path: Path
) -> None:
    source_dir.gen(
        {
            "train.py": """
                import os
                os.makedirs("outputs/bundle", exist_ok=True)
                open("outputs/model.txt", "w").write("trained weights")
                open("outputs/bundle/a.txt", "w").write("a")
                open("outputs/bundle/b.txt", "w").write("b")
            """
        }
    )
    run = Experiment(workspace, "train-and-register").submit(ScriptRunConfig(source_dir, "train.py"))
    run.wait_for_completion()
    model = run.register_model("from-run", "outputs/model.txt", tags={"source": "run"}, description="d")
    assert model.version == 1
    assert model.run_id == run.id
    assert model.tags == {"source": "run"}
    assert Path(model.download(str(tmp_path / "dl"))).read_text() == "trained weights"
    assert [m.id for m in Model.list(workspace, run_id=run.id)] == ["from-run:1"]

    bundle = run.register_model("bundle", "outputs/bundle")
    out = Path(bundle.download(str(tmp_path / "dl")))
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]

    again = run.register_model("from-run", "outputs/model.txt")
    assert again.version == 2
    with pytest.raises(InvalidInputError, match="get_file_names"):
        run.register_model("nothing", "outputs/missing.pkl")
    with pytest.raises(InvalidInputError):
        run.register_model("escape", "../other-run/outputs/model.txt")
    with pytest.raises(ModelNotFound):
        Model(workspace, "nothing")


def test_concurrent_registrations_get_distinct_versions(workspace: Workspace, tmp_path: Path) -> None:
    """Four processes register the same model name at once: versions 1-4, each with its own file."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from runyard import Model, Workspace\n"
        "ws = Workspace.get(sys.argv[1])\n"
        "m = Model.register(ws, sys.argv[2], 'shared')\n"
        "print(m.version)\n"
    )
    sources = [_file(tmp_path / f"src{i}" / "model.txt", f"content {i}") for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(workspace.path), str(src)], stdout=subprocess.PIPE, text=True
        )
        for src in sources
    ]
    versions = {}
    for i, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        versions[int(out.strip())] = f"content {i}"
    assert sorted(versions) == [1, 2, 3, 4]
    for version, content in versions.items():
        assert Path(Model(workspace, "shared", version=version).url).read_text() == content
