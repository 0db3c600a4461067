"""``python -m bridge`` is the ``device-bridge`` command."""

from bridge.cli import main

raise SystemExit(main())
