"""`python -m spokesync.sandbox.google_calendar`."""

from spokesync.sandbox.google_calendar.server import main

raise SystemExit(main())
