"""The response cache: entries per viewer in Redis, never stale, and the express lane that answers hits."""
