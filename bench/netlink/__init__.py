"""Pod attach through netlink three ways: native batcher, pyroute2, ``ip -batch``.

Run ``python -m bench.netlink`` as root; see ``__main__`` for the options.
"""
