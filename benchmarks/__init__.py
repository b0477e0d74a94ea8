"""Hand-written eager baselines for the shipped specs, and the side-by-side benchmark (`bench`)."""
