"""azureml.core.workspace"""

from runyard import __version__ as VERSION
from runyard.core import Model, Workspace
from runyard.errors import ProjectSystemException, UserErrorException, WorkspaceException
from runyard.v1_pending import module_getattr

__all__ = [
    "VERSION",
    "Model",
    "ProjectSystemException",
    "UserErrorException",
    "Workspace",
    "WorkspaceException",
]
__getattr__ = module_getattr(__name__)
