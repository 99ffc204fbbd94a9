"""features layer of the health monitor."""
