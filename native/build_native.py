"""cffi build script for ``corecni._native``.

Compiled by ``pip install`` through ``cffi_modules`` in setup.py. The C sources
live beside this file; the declarations in ``corecni_native.cdef`` plus the
constants of ``cn_abi.def`` (generated here, values from the compiler) are the
whole ABI Python sees.

For development, ``python3 native/build_native.py`` builds in ``native/_build``
(ignored by git) and copies the extension into ``corecni/``; ``--check``
compiles the C sources alone with ``-Wall -Wextra -Werror`` first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fno-strict-aliasing"]


_ABI_ENTRY = re.compile(r"^CN_(OP|FLAG|ATTR)\((\w+),", re.MULTILINE)
_PREFIX = {"OP": "CN_OP_", "FLAG": "CN_F_", "ATTR": "CN_A_"}
_CLASSES = ("IFNAME", "STR", "IP", "HW", "U32", "U64")


def abi_constants() -> list[str]:
    """The constant names cn_abi.def declares (plus the fixed ones of the header):
    the cdef gets them as ``...`` so the values exist only in the C header."""
    text = (HERE / "cn_abi.def").read_text()
    names = [_PREFIX[kind] + name for kind, name in _ABI_ENTRY.findall(text)]
    return ["CN_BATCH_MAGIC", "CN_OP_MAX", "CN_A_MAX",
            *(f"CN_AC_{c}" for c in _CLASSES), *names]


def cdef_text() -> str:
    """corecni_native.cdef with the generated constant declarations."""
    consts = "".join(f"#define {name} ...\n" for name in abi_constants())
    return consts + (HERE / "corecni_native.cdef").read_text()


def make_builder(absolute: bool = False) -> FFI:
    """The FFI builder; ``absolute`` paths let it run from any directory."""
    ffi = FFI()
    ffi.cdef(cdef_text())

    def path(p: Path) -> str:
        return str(p if absolute else p.relative_to(ROOT))

    ffi.set_source(
        "corecni._native",
        '#include "corecni_native.h"',
        sources=[path(p) for p in sorted(HERE.glob("*.c"))],
        depends=[path(p) for p in sorted([*HERE.glob("*.h"), HERE / "cn_abi.def"])],
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
