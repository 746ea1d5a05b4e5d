"""An UNMODIFIED Azure ML SDK v1 script: run it with `python -m runyard.v1 pipeline_unported.py`.

It logs a run, submits a one-step pipeline and a ScriptRunConfig job, and waits for both. Every
`azureml.*` import resolves to `runyard.v1`, here and in the jobs it submits (their scripts import
`azureml.core` too). The workspace is the one `Workspace.from_config()` finds (RUNYARD_WORKSPACE).
"""

import os

import azureml.core
from azureml.core import Experiment, ScriptRunConfig, Workspace
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

here = os.path.dirname(os.path.abspath(__file__))

ws = Workspace.from_config()
experiment = Experiment(workspace=ws, name="v1-unported")

run = experiment.start_logging()
run.log("stage", 1)
run.complete()
print("interactive run:", run.id)

step = PythonScriptStep(
    name="log-step",
    script_name="step_log.py",
    arguments=["--value", 0.5],
    source_directory=os.path.join(here, "steps"),
    allow_reuse=False,
)
pipeline = Pipeline(workspace=ws, steps=[step])
pipeline_run = experiment.submit(pipeline)
pipeline_run.wait_for_completion(show_output=False)
print("pipeline run:", pipeline_run.id, pipeline_run.get_status())

config = ScriptRunConfig(
    source_directory=os.path.join(here, "train"), script="train.py", arguments=["--alpha", 0.25]
)
job = experiment.submit(config)
job.wait_for_completion(show_output=False)
print("script run:", job.id, job.get_status())
print("runs recorded through", azureml.core.Workspace.__module__)
