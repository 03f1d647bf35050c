"""`python -m smartqueue` is the `smartqueue` command."""

from smartqueue.cli import main

main()
