"""Products: the catalog that line items price from."""
