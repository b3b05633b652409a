"""``python -m embedlog.cli``: the same as the ``embedlog`` console script."""

from __future__ import annotations

from . import main

raise SystemExit(main())
