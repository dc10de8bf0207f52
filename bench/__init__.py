"""Benchmarks: `bench/<name>.py` modules with `main() -> dict`, results in bench/results/."""
