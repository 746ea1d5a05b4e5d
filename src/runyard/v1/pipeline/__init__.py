"""azureml.pipeline"""

from runyard.v1_pending import module_getattr

__getattr__ = module_getattr(__name__)
