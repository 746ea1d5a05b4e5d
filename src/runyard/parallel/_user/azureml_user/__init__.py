"""`azureml_user`: the module Azure ML's ParallelRunStep runtime puts on a worker's path (runyard does the
same: the worker adds this folder to sys.path). Only `azureml_user.parallel_run` lives here."""
