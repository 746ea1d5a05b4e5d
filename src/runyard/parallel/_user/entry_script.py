"""`from entry_script import EntryScript`: the name older Azure ML docs use; the same class."""

from azureml_user.parallel_run import EntryScript

__all__ = ["EntryScript"]
