"""Running a sweep: the plan, the engines (local, Dask, SLURM), devices, one job's execution (data,
training, evaluation, checkpoint, record) and the job states.
"""
