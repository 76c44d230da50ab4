"""Suite-wide settings. Fixtures come from corecni.testing (the pytest11 entry point)."""
