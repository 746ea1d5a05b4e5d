"""azureml.core"""

from runyard.v1_pending import module_getattr

__all__ = [
    "VERSION",
    "ComputeTarget",
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "Model",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "Workspace",
]
__getattr__ = module_getattr(
    __name__,
    {
        "ComputeTarget": "runyard.core.compute_target",
        "Dataset": "runyard.data.dataset",
        "Datastore": "runyard.data.datastore",
        "Environment": "runyard.environments.environment",
        "Experiment": "runyard.core",
        "Model": "runyard.core",
        "Run": "runyard.core",
        "RunConfiguration": "runyard.core.runconfig",
        "ScriptRunConfig": "runyard.core",
        "VERSION": "runyard:__version__",
        "Workspace": "runyard.core",
    },
)
