from lossgraph.cli import main

raise SystemExit(main())
