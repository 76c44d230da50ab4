"""Suite-wide settings. Fixtures come from corecni.testing (the pytest11 entry point)."""

#: the example third-party distribution's own tests run against its installed copy
#: (tests/interop/test_example_dist.py), never from the source tree
collect_ignore = ["example_dist"]
