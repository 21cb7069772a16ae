"""The outbox's relay: the side effects of committed writes, published at once and, come what may, later."""
