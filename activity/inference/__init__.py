"""Step 5: a trained model on new videos (recognizer, timelines, live sources, explanations, export)."""
