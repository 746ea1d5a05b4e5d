"""azureml.core.conda_dependencies"""

from runyard import __version__ as VERSION
from runyard.errors import UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["VERSION", "UserErrorException"]
__getattr__ = module_getattr(__name__)
