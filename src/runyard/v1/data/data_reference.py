"""azureml.data.data_reference"""

from runyard.v1_pending import module_getattr

__all__ = ["DataReference"]
__getattr__ = module_getattr(
    __name__,
    {
        "DataReference": "runyard.data.data_reference",
    },
)
