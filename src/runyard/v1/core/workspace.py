"""azureml.core.workspace"""

from runyard import __version__ as VERSION
from runyard.core import Model, Workspace
from runyard.core.authentication import InteractiveLoginAuthentication
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.data.dataset import Dataset
from runyard.data.datastore import DEFAULT_DATASTORE as WORKSPACE_DEFAULT_BLOB_STORE_NAME
from runyard.errors import ProjectSystemException, UserErrorException, WorkspaceException
from runyard.v1_pending import module_getattr

__all__ = [
    "VERSION",
    "WORKSPACE_DEFAULT_BLOB_STORE_NAME",
    "AmlCompute",
    "ComputeTarget",
    "Dataset",
    "InteractiveLoginAuthentication",
    "Model",
    "ProjectSystemException",
    "UserErrorException",
    "Workspace",
    "WorkspaceException",
]
__getattr__ = module_getattr(__name__)
