"""azureml.data.datapath"""

from runyard.v1_pending import module_getattr

__all__ = ["DataPath", "DataPathComputeBinding", "DataReference"]
__getattr__ = module_getattr(
    __name__,
    {
        "DataPath": "runyard.data.datapath",
        "DataPathComputeBinding": "runyard.data.datapath",
        "DataReference": "runyard.data.data_reference",
    },
)
