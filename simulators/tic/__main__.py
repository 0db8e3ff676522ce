"""``python -m simulators.tic``: a simulated Linky on a pty until stopped."""

from simulators.tic.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
