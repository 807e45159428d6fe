"""Custom fields: definitions per object type, and the rules record writes follow."""
