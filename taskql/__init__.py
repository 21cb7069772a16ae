"""The taskql application: settings resolution, app factory, database, Redis, embedded servers and CLI.

Nothing in ``schema``, ``resolvers``, ``auth``, ``models`` or ``core`` imports this package.
"""
