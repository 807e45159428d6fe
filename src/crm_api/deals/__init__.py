"""Deals: pipelines positions, stage history, contacts with roles, and line items."""
