"""Load scripts for a Pixelfleet API: bounded, self-stopping, with percentile reports."""
