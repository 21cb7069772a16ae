"""Authentication and authorization: argon2id passwords, JWT access tokens, refresh-token sessions and the
viewer. Knows nothing of Strawberry (``schema.directives.auth`` enforces ``@auth``); imports ``models`` and
``core``."""
