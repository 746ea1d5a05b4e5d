"""azureml.core.datastore"""

from runyard.data.datastore import Datastore
from runyard.errors import UserErrorException
from runyard.v1_pending import module_getattr

__all__ = ["Datastore", "UserErrorException"]
__getattr__ = module_getattr(__name__)
