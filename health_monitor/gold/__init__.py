"""gold layer of the health monitor."""
