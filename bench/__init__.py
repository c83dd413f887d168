"""Benchmarks of trueup against the tools a user would pick instead (Docker Compose v2, v1).

Not part of the test suite: `bench/run` is the one command (see README, "Benchmarks").
"""
