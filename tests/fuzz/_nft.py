"""nftables' ruleset read (and flushed) through libnftables, in-process: no ``nft`` process.

The fuzz suite reads the node's firewall after every call of a plugin that writes
rules. ``nft list ruleset`` (plus ``iptables-save`` for both families) cost three
processes, ~30 ms; libnftables (Debian's libnftables1, what ``nft`` itself links)
answers the same text in well under a millisecond. iptables here is iptables-nft, so
its rules are in the same ruleset. The context acts in the namespace of the process
that creates it (the fork server runs inside the node's).
"""

from __future__ import annotations

import ctypes
import ctypes.util


class Nft:
    """One libnftables context; ``run`` answers a command's output (raises on error)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, command: str) -> str:
        status = self.lib.nft_run_cmd_from_buffer(self.ctx, command.encode())
        out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode()
        err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode()
        if status != 0:
            raise OSError(f"nft {command!r} failed: {err.strip()}")
        return out
