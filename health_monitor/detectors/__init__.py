"""detectors layer of the health monitor."""
