from spokesync.sandbox.google_people.server import main

raise SystemExit(main())
