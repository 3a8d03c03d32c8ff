from umsrep.cli import main

raise SystemExit(main())
