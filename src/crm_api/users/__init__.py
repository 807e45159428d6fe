"""Users, their roles, and the API keys they authenticate with."""
