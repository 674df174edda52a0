"""Datasets (CULane, TuSimple), the synthetic scene generator, ground-truth encoding and the official writers.

Import the submodules directly; this package imports nothing heavy on its own.
"""
