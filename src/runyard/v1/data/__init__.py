"""azureml.data"""

from runyard.pipeline import OutputFileDatasetConfig

__all__ = ["OutputFileDatasetConfig"]
