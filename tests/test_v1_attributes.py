"""A missing attribute on a v1 class says what to do: a close name, or which issue brings v1's method."""

from __future__ import annotations

import pytest

from runyard import Experiment, Workspace
from runyard.compat import MissingV1Attribute


def test_a_typo_suggests_the_close_name(sqlite_workspace: Workspace) -> None:
    with pytest.raises(
        AttributeError, match=r"'Workspace' object has no attribute 'nmae'\. Did you mean 'name'\?"
    ):
        sqlite_workspace.nmae  # noqa: B018
    assert getattr(sqlite_workspace, "no_such_thing", 7) == 7  # probes with a default still work
    assert not hasattr(sqlite_workspace, "no_such_thing")


def test_a_v1_method_runyard_lacks_names_its_issue_or_reason(sqlite_workspace: Workspace) -> None:
    run = Experiment(sqlite_workspace, "attrs").start_logging(snapshot_directory=None, outputs=None)
    try:
        with pytest.raises(MissingV1Attribute, match=r"v1's Run\.submit_child is not planned in runyard: "):
            run.submit_child  # noqa: B018
    finally:
        run.complete()
    with pytest.raises(MissingV1Attribute, match=r"Datastore\.register_dbfs is not planned in runyard"):
        sqlite_workspace.get_default_datastore().register_dbfs  # noqa: B018


def test_private_names_stay_plain_attribute_errors(sqlite_workspace: Workspace) -> None:
    with pytest.raises(AttributeError) as caught:
        sqlite_workspace._no_such_private  # noqa: B018
    assert type(caught.value) is AttributeError
