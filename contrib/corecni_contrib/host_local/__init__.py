"""host-local IPAM: addresses from local ranges, state in files shared with Go's plugin.

The entry point is ``corecni_contrib.host_local.plugin``; ``config`` reads and
validates the configuration, ``allocator`` walks the ranges, ``store`` is the
on-disk format and lock that Go's ``host-local`` uses too, ``dns`` reads a
``resolv.conf``.
"""
