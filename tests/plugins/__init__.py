"""Small Python CNI plugins used by corecni's own tests (no kernel work).

Each records what it was called with in the file named by its config's
``log`` key, one JSON line per call, so tests can assert order and inputs.
"""
