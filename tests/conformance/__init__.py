"""Upstream's own test vectors (libcni, pkg/invoke, pkg/types, pkg/version), carried over as
data in ``vectors/*.json`` (inputs and libcni's answers: facts, not code), asserting corecni's
answers. A vector where corecni answers differently on purpose carries a ``difference`` key;
each such key is listed and justified in docs/architecture.md (checked by test_differences)."""
