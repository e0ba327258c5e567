from mlip.cli import main

raise SystemExit(main())
