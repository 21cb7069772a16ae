"""Authentication and authorization: argon2id passwords, JWT access tokens, refresh-token sessions,
the viewer, and the ``@auth`` schema directive with its enforcement. Imports ``models`` and ``core``."""
