"""Step 6: metrics and reports, cross-validation, collection checks."""
