"""``python -m embedlog``: the same as the ``embedlog`` console script
(``embedlog.cli:main``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
