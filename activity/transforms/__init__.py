"""Step 2: decoded frames to backbone input (frame adjustments, resize, crop, normalisation)."""
