"""Side-by-side benchmarks: corecni vs the Go reference, ratios printed."""
