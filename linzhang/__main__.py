from linzhang.cli import main

raise SystemExit(main())
