"""azureml.core.datastore"""

from runyard.v1_pending import module_getattr

__all__ = ["Datastore", "UserErrorException"]
__getattr__ = module_getattr(
    __name__,
    {
        "Datastore": "runyard.data.datastore",
        "UserErrorException": "runyard.errors",
    },
)
