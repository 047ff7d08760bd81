"""Step 4: temporal models over cached features, their training, baselines and checkpoints."""
