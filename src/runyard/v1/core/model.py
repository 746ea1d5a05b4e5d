"""azureml.core.model"""

from runyard.v1_pending import module_getattr

__all__ = [
    "Dataset",
    "Environment",
    "Experiment",
    "FileDataset",
    "Model",
    "ModelNotFoundException",
    "RunEnvironmentException",
    "TabularDataset",
    "UserErrorException",
]
__getattr__ = module_getattr(
    __name__,
    {
        "Dataset": "runyard.data.dataset",
        "Environment": "runyard.environments.environment",
        "Experiment": "runyard.core",
        "FileDataset": "runyard.data.dataset",
        "Model": "runyard.core",
        "ModelNotFoundException": "runyard.errors",
        "RunEnvironmentException": "runyard.errors",
        "TabularDataset": "runyard.data.dataset",
        "UserErrorException": "runyard.errors",
    },
)
