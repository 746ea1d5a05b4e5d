"""azureml.pipeline"""
