"""Benchmarks behind `lavpr bench core` (core.py) and `lavpr bench ros` (ros.py): numbers,
not assertions."""
