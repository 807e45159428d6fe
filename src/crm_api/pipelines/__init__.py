"""Pipelines and their ordered stages: where a deal stands and how likely it is to close."""
