"""`python -m bench` runs the benchmarks (see bench.runner)."""

from bench.runner import main

main()
