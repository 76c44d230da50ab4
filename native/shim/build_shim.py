"""Build corecni's exec shim (``shim.c`` -> ``corecni/corecni-shim``).

Called by setup.py's build_ext (so ``pip install`` builds it beside
``corecni._native``) and runnable by hand: ``python3 native/shim/build_shim.py
[OUTPUT]``. A static link is tried first (fastest start-up, smallest RSS, no
loader), then a dynamic one. A failure is reported, never fatal: without the
shim, ``corecni install`` writes the Python launchers only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "shim.c"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-D_FORTIFY_SOURCE=2"]


def compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def build(output: Path, *, werror: bool = False) -> Path:
    """Compile the shim to ``output``; raise ``RuntimeError`` saying why it failed."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    flags = [*CFLAGS, *(["-Werror"] if werror else [])]
    errors = []
    for link in (["-static"], []):
        cmd = [*compiler(), *flags, *link, "-o", str(tmp), str(SOURCE)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            subprocess.run(["strip", str(tmp)], capture_output=True, check=False)
            os.chmod(tmp, 0o755)
            os.replace(tmp, output)
            return output
        errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()[-400:]}")
    raise RuntimeError("cannot compile the shim: " + " | ".join(errors))


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else HERE.parent.parent / "corecni" / "corecni-shim"
    if shutil.which(compiler()[0]) is None:
        print(f"no C compiler ({compiler()[0]})", file=sys.stderr)
        return 1
    print(f"built {build(out, werror=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
