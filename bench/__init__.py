"""End-to-end benchmarks: the whole fleet through its public HTTP API against a peer (thumbor)."""
