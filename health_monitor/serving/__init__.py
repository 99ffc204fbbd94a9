"""serving layer of the health monitor."""
