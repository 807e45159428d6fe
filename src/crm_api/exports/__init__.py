"""Exports: a list's whole result as CSV or NDJSON, streamed in keyset chunks."""
