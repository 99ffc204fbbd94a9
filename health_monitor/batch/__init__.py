"""batch layer of the health monitor."""
