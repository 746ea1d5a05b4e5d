"""Data access: datastores now; datasets arrive with issue 12.

Everything here works on a workspace object handed in by the caller and imports nothing from
`runyard.core`, so `core.workspace` can hand out a `Datastore` without a cycle.
"""

from runyard.data.datastore import DEFAULT_DATASTORE, Datastore

__all__ = ["DEFAULT_DATASTORE", "Datastore"]
