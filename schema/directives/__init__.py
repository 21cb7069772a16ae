"""The schema directives: ``@auth`` (enforced on the resolvers it guards) and ``@cacheControl``."""
