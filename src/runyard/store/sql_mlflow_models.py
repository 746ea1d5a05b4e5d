"""MLflow 3's logged models.

(Being written for issue 16.)
"""

from __future__ import annotations

from runyard.store.sql_base import SqlBase


class SqlMlflowModels(SqlBase):
    pass
