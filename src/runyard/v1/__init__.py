"""Azure ML SDK v1's module tree, so a port is `azureml.` -> `runyard.v1.` and nothing else.

Every module under here only re-exports names implemented in runyard's own packages.
"""

from runyard.v1_pending import module_getattr

__getattr__ = module_getattr(__name__)
