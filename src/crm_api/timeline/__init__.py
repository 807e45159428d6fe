"""The relationship timeline: one newest-first stream per contact, company or deal."""
