from mprm.cli import main

raise SystemExit(main())
