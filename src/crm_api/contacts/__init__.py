"""Contacts: people, with normalized email and phone, lifecycle history and owners."""
