"""Background work, in `crm-api worker` processes or inside `serve` (the embedded default)."""
