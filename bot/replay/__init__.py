"""Trainer replay: test stories and recorded conversations replayed turn by turn against the trained model."""
