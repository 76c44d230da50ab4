"""bench.shim: corecni's native shim + daemon beside Go's plugins (``python -m bench.shim``)."""
