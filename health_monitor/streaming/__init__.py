"""streaming layer of the health monitor."""
