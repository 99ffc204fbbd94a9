"""rules layer of the health monitor."""
