"""Conformance tests for what every Store refuses, and for runs that cannot be reopened or re-pointed.

Mixed into StoreSuite (tests/store_suite.py), so the same inputs go to SQLite, PostgreSQL and a server
(in-process and over real HTTP) and must get the same answer: an InvalidInputError or ConflictError,
with nothing stored. The inputs are the ones a review got a SQLite-backed server to accept and a
PostgreSQL-backed one to answer 500 for (issue 10, "Validation at the boundary").
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import pytest

from runyard.errors import InvalidInputError, RunFinishedError
from runyard.status import RunStatus
from runyard.store.base import Store
from runyard.store.records import MetricRow, ModelRecord, RunRecord

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


def make_record(store: Store, run_id: str | None = None, **fields: Any) -> RunRecord:
    exp = store.get_or_create_experiment("validation")
    values: dict[str, Any] = {
        "run_id": f"run_{uuid.uuid4().hex[:10]}" if run_id is None else run_id,
        "experiment_id": exp.id,
        "experiment_name": exp.name,
        "status": RunStatus.NOT_STARTED,
        "run_type": "azureml.scriptrun",
        "created_time": time.time(),
    }
    values.update(fields)
    return RunRecord(**values)


def _row(run_id: str, **fields: Any) -> MetricRow:
    values: dict[str, Any] = {"run_id": run_id, "name": "m", "kind": "scalar", "timestamp": time.time()}
    values.update(fields)
    return MetricRow(**values)


class ValidationSuite:
    __test__ = False

    # -- metrics --------------------------------------------------------------------------------
    def test_metric_name_of_100k_characters_is_refused(self, store: Store) -> None:
        run = store.create_run(make_record(store))
        with pytest.raises(InvalidInputError, match="100000 characters long; the limit is 255"):
            store.append_metrics(
                [_row(run.run_id, value=1.0), _row(run.run_id, name="n" * 100_000, value=2.0)]
            )
        store.append_metrics([_row(run.run_id, name="n" * 255, value=3.0)])  # the limit itself is fine
        assert [(r.name, r.value) for r in store.get_metric_rows([run.run_id])] == [("n" * 255, 3.0)]

    @pytest.mark.parametrize("name", ["", "   ", "nul\x00here"])
    def test_empty_or_nul_metric_names_are_refused(self, store: Store, name: str) -> None:
        run = store.create_run(make_record(store))
        with pytest.raises(InvalidInputError, match="Metric name"):
            store.append_metrics([_row(run.run_id, name=name, value=1.0)])
        assert store.count_metric_rows(run.run_id) == 0

    def test_unknown_metric_kind_is_refused(self, store: Store) -> None:
        run = store.create_run(make_record(store))
        with pytest.raises(InvalidInputError, match="kind 'bogus'; use one of scalar, list, row, image"):
            store.append_metrics([_row(run.run_id, kind="bogus", value=1.0)])
        assert store.count_metric_rows(run.run_id) == 0
        assert store.get_metric_summaries([run.run_id]) == []

    @pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
    def test_non_finite_metric_values_are_refused(self, store: Store, bad: float) -> None:
        """As run.log() refuses them (core/metrics.py): one rule for the Python API and the store. A RestStore's
        client checks the same rules before sending (InvalidInputError is a ValueError); a server
        refuses JSON's `Infinity` and `NaN` (tests/test_store_validation.py)."""
        run = store.create_run(make_record(store))
        for row in (
            _row(run.run_id, value=bad),
            _row(run.run_id, kind="list", value=bad),
            _row(run.run_id, kind="row", payload={"loss": bad}),
            _row(run.run_id, kind="row", payload={"cells": [1.0, [2.0, bad]]}),
        ):
            with pytest.raises(ValueError, match=r"not a finite number|not JSON compliant"):
                store.append_metrics([_row(run.run_id, value=0.5), row])
        assert store.count_metric_rows(run.run_id) == 0
        assert store.get_metric_summaries([run.run_id]) == []

    def test_nul_in_metric_text_is_refused(self, store: Store) -> None:
        run = store.create_run(make_record(store))
        with pytest.raises(InvalidInputError, match="NUL"):
            store.append_metrics([_row(run.run_id, text="a\x00b")])
        assert store.count_metric_rows(run.run_id) == 0

    # -- experiments and runs -------------------------------------------------------------------
    @pytest.mark.parametrize("name", ["nul\x00name", "", "x" * 256, "line\nbreak"])
    def test_bad_experiment_names_are_refused(self, store: Store, name: str) -> None:
        with pytest.raises(InvalidInputError, match=r"(?i)experiment name|body\.name"):
            store.get_or_create_experiment(name)
        assert store.list_experiments() == []

    def test_path_like_names_stay_fine_for_experiments(self, store: Store) -> None:
        """MLflow clients name experiments like paths; only run ids name folders."""
        assert store.get_or_create_experiment("/Users/me/exp").name == "/Users/me/exp"
        assert store.get_or_create_experiment("x" * 255).name == "x" * 255

    @pytest.mark.parametrize(
        "run_id", ["..", ".", "a/../../b", "a\\b", "", "nul\x00id", "tab\tid", "é" * 128]
    )
    def test_run_ids_that_are_not_one_safe_path_component_are_refused(
        self, store: Store, run_id: str
    ) -> None:
        with pytest.raises(InvalidInputError, match="Run id"):
            store.create_run(make_record(store, run_id))
        assert store.list_runs() == []

    def test_run_with_a_missing_parent_is_refused(self, store: Store) -> None:
        with pytest.raises(InvalidInputError, match="parent run 'no-such-parent', which does not exist"):
            store.create_run(make_record(store, "orphan", parent_id="no-such-parent"))
        with pytest.raises(InvalidInputError, match="Parent run id"):
            store.create_run(make_record(store, "orphan", parent_id="../x"))
        assert store.list_runs() == []
        # a parent created in the same batch, or before, is fine
        made = store.create_runs(
            [make_record(store, "parent"), make_record(store, "child", parent_id="parent")]
        )
        assert [r.run_id for r in made] == ["parent", "child"]
        store.create_run(make_record(store, "grandchild", parent_id="child"))
        assert [r.run_id for r in store.list_descendants("parent", recursive=True)] == ["child", "grandchild"]

    @pytest.mark.parametrize(
        "fields",
        [
            {"display_name": "d" * 257},
            {"display_name": "nul\x00"},
            {"status": "Bogus"},
            {"created_time": math.inf},
            {"run_type": "t" * 65},
        ],
    )
    def test_bad_run_fields_are_refused(self, store: Store, fields: dict[str, Any]) -> None:
        with pytest.raises(ValueError):  # InvalidInputError, or a RestStore's JSON encoder refusing Infinity
            store.create_run(make_record(store, **fields))
        assert store.list_runs() == []

    def test_nul_inside_json_round_trips(self, store: Store) -> None:
        """JSON escapes NUL, so run data and a failed run's error (its last log lines) may hold one on
        every database; refusing it would leave a run unable to record why it failed."""
        run = store.create_run(make_record(store, data={"note": "a\x00b"}))
        failed = store.set_run_status(run.run_id, RunStatus.FAILED, error={"message": "log\x00line"})
        assert failed.status == RunStatus.FAILED
        stored = store.get_run(run.run_id)
        assert (stored.data["note"], stored.data["error"]) == ("a\x00b", {"message": "log\x00line"})

    def test_bad_tags_properties_and_names_are_refused(self, store: Store) -> None:
        run = store.create_run(make_record(store))
        for tags in ({"k" * 256: "v"}, {"": "v"}, {"k\x00": "v"}, {"k": "v\x00"}):
            with pytest.raises(InvalidInputError):
                store.set_tags(run.run_id, tags)
            with pytest.raises(InvalidInputError):
                store.add_properties(run.run_id, {k: v or "" for k, v in tags.items()})
        with pytest.raises(InvalidInputError, match="Display name"):
            store.update_run_data(run.run_id, {"display_name": "x\x00"})
        assert store.get_tags(run.run_id) == {} and store.get_properties(run.run_id) == {}
        assert store.get_run(run.run_id).display_name is None

    @pytest.mark.parametrize(
        "fields",
        [
            {"name": "../escape"},
            {"name": "a/b"},
            {"name": ".."},
            {"name": "m" * 256},
            {"name": "nul\x00"},
            {"name": "ok", "tags": {"k": "nul\x00"}},
            {"name": "ok", "run_id": "a/../../b"},
        ],
    )
    def test_bad_models_are_refused(self, store: Store, fields: dict[str, Any]) -> None:
        model = ModelRecord(version=0, path="models/{version}/m.pkl", created_time=time.time(), **fields)
        with pytest.raises(InvalidInputError, match=r"Model|NUL|Run id"):
            store.register_model(model)
        assert store.list_models() == []

    # -- terminal states ------------------------------------------------------------------------
    @pytest.mark.parametrize("terminal", TERMINAL)
    def test_force_cannot_reopen_an_ended_run(self, store: Store, terminal: str) -> None:
        run = store.create_run(make_record(store))
        store.set_run_status(run.run_id, RunStatus.RUNNING)
        ended = store.set_run_status(run.run_id, terminal)
        for later in (RunStatus.RUNNING, RunStatus.NOT_STARTED, RunStatus.QUEUED, *TERMINAL):
            if later == terminal:
                continue
            with pytest.raises(RunFinishedError, match=f"already ended with status {terminal}"):
                store.set_run_status(run.run_id, later, force=True, data={"reopened": True})
        assert store.set_run_status(run.run_id, terminal, force=True).status == terminal  # a no-op
        stored = store.get_run(run.run_id)
        assert (stored.status, stored.end_time) == (terminal, ended.end_time)
        assert "reopened" not in stored.data
