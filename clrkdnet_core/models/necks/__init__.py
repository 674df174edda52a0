"""Necks: CLRNet FPN (teachers) and CLRKDNet Aggregator (students)."""
