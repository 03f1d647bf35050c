"""smartqueue's benchmarks: `python -m bench` (or `make bench`) measures and writes BENCHMARKS.md.

One module per benchmark (`enqueue`, `added_latency`, `scheduling`, `memory`, `replicas`), each
starting what it needs on free loopback ports through `procs`; `runner` runs them and `report`
writes the file. Everything is measured from outside the service, as a client and Redis see it.
"""
