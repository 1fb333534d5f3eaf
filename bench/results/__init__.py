"""The results folder: per-job Parquet rows and sidecars, selection of comparable jobs, provenance and
atomic writes. Imports only the shared vocabulary.
"""
