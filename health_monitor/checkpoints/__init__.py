"""checkpoints layer of the health monitor."""
