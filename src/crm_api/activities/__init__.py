"""Activities: calls, emails, meetings and notes, linked to contacts, a company and a deal."""
