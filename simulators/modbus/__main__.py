"""``python -m simulators.modbus``: serve simulated Modbus devices until stopped."""

from simulators.modbus.cli import main

raise SystemExit(main())
