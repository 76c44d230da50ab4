"""Reference CNI plugins for corecni (registered through entry points only)."""
