"""Tasks: what should happen next, for whom, by when."""
