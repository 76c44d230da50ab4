"""cffi build script for ``corecni._native``.

Compiled by ``pip install`` through ``cffi_modules`` in setup.py. The C sources
live beside this file; the declarations in ``corecni_native.cdef`` are the
whole ABI Python sees.

For development, ``python3 native/build_native.py`` builds in ``native/_build``
(ignored by git) and copies the extension into ``corecni/``; ``--check``
compiles the C sources alone with ``-Wall -Wextra -Werror`` first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fno-strict-aliasing"]


def make_builder(absolute: bool = False) -> FFI:
    """The FFI builder; ``absolute`` paths let it run from any directory."""
    ffi = FFI()
    ffi.cdef((HERE / "corecni_native.cdef").read_text())

    def path(p: Path) -> str:
        return str(p if absolute else p.relative_to(ROOT))

    ffi.set_source(
        "corecni._native",
        '#include "corecni_native.h"',
        sources=[path(p) for p in sorted(HERE.glob("*.c"))],
        include_dirs=[path(HERE)],
        extra_compile_args=CFLAGS,
    )
    return ffi


ffibuilder = make_builder()


def check_warnings() -> None:
    """Compile every C file on its own with warnings as errors."""
    for src in sorted(HERE.glob("*.c")):
        subprocess.run(["gcc", *CFLAGS, "-Werror", "-fsyntax-only", f"-I{HERE}", str(src)],
                       check=True)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        check_warnings()
    build = HERE / "_build"
    build.mkdir(exist_ok=True)
    so = Path(make_builder(absolute=True).compile(tmpdir=str(build), verbose="-v" in argv))
    # Same file name as the pip (setuptools) build, so neither shadows the other.
    for stale in (ROOT / "corecni").glob("_native*.so"):
        stale.unlink()
    target = ROOT / "corecni" / "_native.abi3.so"
    shutil.copy2(so, target)
    print(f"built {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
