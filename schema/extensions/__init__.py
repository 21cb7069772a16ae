"""Strawberry schema extensions, one per module, in the order ``schema.build`` lists them."""
