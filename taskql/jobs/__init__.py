"""Background jobs: the worker over the PostgreSQL queue (pgqueuer), account mails, periodic cleanup."""
