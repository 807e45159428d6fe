"""`Idempotency-Key`: a retried write replays its first response instead of running again."""
