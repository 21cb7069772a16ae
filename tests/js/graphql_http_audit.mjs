// graphql-http's server audit (auditServer), unmodified, against a live taskql server: the GraphQL over HTTP
// spec's checks, as the reference implementation's authors wrote them.
//
//   node graphql_http_audit.mjs URL        (URL of the endpoint, e.g. http://127.0.0.1:8000/graphql)
//
// Prints one JSON document on stdout: {"graphqlHttp": version, "results": [...]}, each result with its id,
// name and status ("ok", "notice", "warn" or "error"), and for a failure the reason and what the server
// answered (status, content type, body). Nothing here asserts: tests/test_http_conformance.py does.

import { readFileSync } from "node:fs";

import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node graphql_http_audit.mjs URL");
  process.exit(2);
}

const version = JSON.parse(
  readFileSync(new URL("node_modules/graphql-http/package.json", import.meta.url), "utf8"),
).version;

async function answered(response) {
  // The audit may have read the body already; a clone may then be unreadable, which is said as such.
  let body;
  try {
    body = await response.clone().text();
  } catch (error) {
    body = `<body already read: ${error.message}>`;
  }
  return { status: response.status, contentType: response.headers.get("content-type"), body };
}

const results = [];
for (const result of await auditServer({ url })) {
  const { response, ...rest } = result;
  results.push(response ? { ...rest, response: await answered(response) } : rest);
}
console.log(JSON.stringify({ graphqlHttp: version, results }));
