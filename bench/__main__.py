"""Run every benchmark: ``python -m bench``."""

from __future__ import annotations

import sys

from bench import chain, exec_startup
from bench.manager import __main__ as manager
from bench.netlink import __main__ as netlink
from bench.shim import __main__ as shim


def main() -> int:
    status = 0
    for name, entry in (("exec start-up", exec_startup.main), ("netlink", netlink.main),
                        ("pod network manager", manager.main),
                        ("exec shim + daemon", shim.main), ("chain", chain.main)):
        print(f"\n===== {name} =====", flush=True)
        status |= entry([])
    return status


if __name__ == "__main__":
    sys.exit(main())
