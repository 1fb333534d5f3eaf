"""Statistics and tables computed from the stored per-image rows: paired tests, ranks, the paper's tables,
learning flags and compute. Imports the shared vocabulary and results/, never run/, report/ or models/.
"""
