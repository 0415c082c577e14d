from fstmatch.cli import main

raise SystemExit(main())
