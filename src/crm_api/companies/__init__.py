"""Companies (accounts): normalized domains, owners, lifecycle."""
