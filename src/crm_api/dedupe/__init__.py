"""Duplicate contacts and companies: finding candidate groups, and merging them."""
