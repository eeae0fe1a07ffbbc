"""``python -m sim``: the same CLI as the ``sim`` console script."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="sim")
