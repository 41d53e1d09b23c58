"""``python -m companion ...``: the coursework command line (see :mod:`companion.coursework`)."""

from .coursework import main

raise SystemExit(main())
