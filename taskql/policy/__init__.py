"""What a request may do before it runs: rate limits, persisted queries, idempotency keys."""
