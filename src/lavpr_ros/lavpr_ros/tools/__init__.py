"""Tools that are nodes too: the image-sequence player used by tests, the demo and benchmarks."""
