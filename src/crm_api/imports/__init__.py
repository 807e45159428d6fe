"""CSV import: upload a file, the worker writes its rows in chunks."""
