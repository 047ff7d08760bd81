"""Step 1 of the flow: labelled clip collections and their splits, frame sampling, video decoding."""
