"""What is done with stored fold models after a sweep: prediction on new images, external cohorts,
fair tuning and architecture grids.
"""
