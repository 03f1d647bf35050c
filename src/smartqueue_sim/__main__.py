"""`python -m smartqueue_sim` is the `smartqueue-sim` command."""

from smartqueue_sim.cli import main

main()
