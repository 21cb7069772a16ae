"""Subscriptions: the event hub across instances, durable resume, and the WebSocket connections."""
