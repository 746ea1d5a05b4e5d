"""MLflow's experiment and run lifecycle: experiment tags, rename, delete/restore, artifact location; run soft delete/restore.

(Being written for issue 16.)
"""

from __future__ import annotations

from runyard.store.sql_base import SqlBase


class SqlMlflowRuns(SqlBase):
    pass
