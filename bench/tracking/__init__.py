"""Results in a tracking server: a results folder as MLflow runs (``bench export --to mlflow``, ``bench run
--track mlflow``).

``layout`` says what one job and one configuration become (params, metrics, tags, artefacts), without
MLflow; ``mlflow_runs`` writes that to a server through ``MlflowClient``; ``export`` selects the jobs of a
results folder and logs them, once each (found again by their job key); ``target`` names the server
and experiment and checks that MLflow is installed and the server answers. docs/tracking.md describes
the layout.
"""
