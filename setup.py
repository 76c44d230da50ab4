"""Build hook: compile corecni._native with cffi, but never fail the install.

A node without a compiler still gets a working corecni on the pyroute2 backend;
the build prints one warning saying why the native module is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext


def build_shim(cmd: build_ext) -> None:
    """The exec shim (native/shim): its own C executable, placed beside corecni._native."""
    import os

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "native", "shim"))
    try:
        from build_shim import build

        build(Path(cmd.get_ext_fullpath("corecni._native")).parent / "corecni-shim")
    except Exception as exc:
        print(f"WARNING: corecni exec shim not built ({exc}); "
              "`corecni install` writes Python launchers only", file=sys.stderr)


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"WARNING: corecni native module not built ({exc}); "
                  "falling back to the pyroute2 backend", file=sys.stderr)
        build_shim(self)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"WARNING: corecni native module not built ({exc}); "
                  "falling back to the pyroute2 backend", file=sys.stderr)


setup(
    cffi_modules=["native/build_native.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
