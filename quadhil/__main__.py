from quadhil.cli import main

raise SystemExit(main())
