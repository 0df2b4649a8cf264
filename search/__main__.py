"""``python -m search`` is the ``sslsearch`` command."""

from search.cli import main

raise SystemExit(main())
