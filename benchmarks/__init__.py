"""Dynaseal's benchmark: the gateway against its own fast upstream, on loopback.

Run ``python -m benchmarks.run`` (see :mod:`benchmarks.run`).
"""
