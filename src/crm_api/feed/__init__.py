"""The change feed: committed events in a gap-free order, resumable from a cursor."""
