"""Redis: the client behind a circuit breaker, the pipelined connection, the greeting on every connection."""
