"""Planned completion, and the private attributes of Strawberry and graphql-core behind a version check."""
