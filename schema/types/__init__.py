"""The schema's types: objects, inputs, enums and scalars, each a thin façade over ``resolvers``."""
