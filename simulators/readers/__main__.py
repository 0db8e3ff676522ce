"""``python -m simulators.readers``: a simulated badge reader on a pty until stopped."""

from simulators.readers.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
