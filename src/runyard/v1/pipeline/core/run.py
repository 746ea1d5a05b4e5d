"""azureml.pipeline.core.run"""

from runyard.v1_pending import module_getattr

__all__ = [
    "ActivityFailedException",
    "AzureMLException",
    "Experiment",
    "ExperimentExecutionException",
    "PipelineRun",
    "Run",
    "StepRun",
    "StepRunOutput",
]
__getattr__ = module_getattr(
    __name__,
    {
        "ActivityFailedException": "runyard.errors",
        "AzureMLException": "runyard.errors",
        "Experiment": "runyard.core",
        "ExperimentExecutionException": "runyard.errors",
        "PipelineRun": "runyard.pipeline",
        "Run": "runyard.core",
        "StepRun": "runyard.pipeline",
        "StepRunOutput": "runyard.pipeline.port_data",
    },
)
