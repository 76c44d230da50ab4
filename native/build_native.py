"""cffi build script for ``corecni._native``.

Compiled by ``pip install`` through ``cffi_modules`` in setup.py. The C sources
live beside this file; the declarations below are the whole ABI Python sees.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "corecni_native.cdef").read_text())
ffibuilder.set_source(
    "corecni._native",
    '#include "corecni_native.h"',
    sources=[str(p.relative_to(HERE.parent)) for p in sorted(HERE.glob("*.c"))],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
