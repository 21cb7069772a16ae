"""The command line (typer): serve, migrate, seed, create-admin, export-schema, and the embedded services."""
