"""azureml.pipeline.steps"""

from runyard.v1_pending import module_getattr

__all__ = ["ParallelRunConfig", "ParallelRunStep", "PythonScriptStep"]
__getattr__ = module_getattr(
    __name__,
    {
        "ParallelRunConfig": "runyard.parallel",
        "ParallelRunStep": "runyard.parallel",
        "PythonScriptStep": "runyard.pipeline",
    },
)
