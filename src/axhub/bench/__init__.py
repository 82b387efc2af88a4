"""Benchmark runners (``axhub bench NAME``): each prints a table, saves JSON and updates
docs/benchmarks.md. A module here that defines ``register(app)`` is found automatically."""
