"""``python -m featkit.cli``: the ``featkit`` command line."""

from featkit.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
