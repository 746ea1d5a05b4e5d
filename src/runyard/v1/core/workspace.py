"""azureml.core.workspace"""

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
__getattr__ = module_getattr(
    __name__,
    {
        "AmlCompute": "runyard.core.compute_target",
        "ComputeTarget": "runyard.core.compute_target",
        "Dataset": "runyard.data.dataset",
        "InteractiveLoginAuthentication": "runyard.core.authentication",
        "Model": "runyard.core",
        "ProjectSystemException": "runyard.errors",
        "UserErrorException": "runyard.errors",
        "VERSION": "runyard:__version__",
        "WORKSPACE_DEFAULT_BLOB_STORE_NAME": "runyard.data.datastore:DEFAULT_DATASTORE",
        "Workspace": "runyard.core",
        "WorkspaceException": "runyard.errors",
    },
)
