from daedyn.cli import main

raise SystemExit(main())
