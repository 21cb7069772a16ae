"""What each field does: queries and mutations as plain async functions ``(ctx, *, args)``, and the
per-request dataloaders. Knows nothing of Strawberry or HTTP; imports ``auth``, ``models`` and ``core``."""
