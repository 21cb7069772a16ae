"""Webhooks: the delivery of one signed webhook, and the SSRF checks of where it may go."""
