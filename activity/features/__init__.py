"""Step 3: the frozen backbone, the frame encoder, the feature cache and extraction."""
