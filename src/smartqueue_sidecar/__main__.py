"""`python -m smartqueue_sidecar`: the same as the `smartqueue-sidecar` command."""

from smartqueue_sidecar.cli import main

raise SystemExit(main())
