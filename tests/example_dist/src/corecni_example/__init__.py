"""Example third-party CNI plugins for corecni (see README.md)."""
