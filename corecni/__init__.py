"""corecni: the Container Network Interface (CNI 1.1.0) in Python."""

__version__ = "0.1.0"
