"""GraphQL over HTTP: media types, parameters, limits, refusals, security headers, request ids, GraphiQL."""
