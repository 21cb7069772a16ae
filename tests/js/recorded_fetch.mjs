// What the persisted-query client scripts share: where they find the server, the repository's operations
// and manifest, and a fetch that records every request a client makes (read by tests/recorded_clients.py).

import { readFileSync } from "node:fs";

const QUERIES = new URL("../../graphql/queries/", import.meta.url);
export const MANIFEST = new URL("../../graphql/manifest.json", import.meta.url);

/** The operation's text, as graphql/queries/NAME.graphql holds it. */
export const operationText = (name) => readFileSync(new URL(`${name}.graphql`, QUERIES), "utf8");

/** The version of a package installed in tests/js/node_modules. */
export const installedVersion = (name) =>
  JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, import.meta.url), "utf8")).version;

/** The server's URL and an access token: the arguments, or TASKQL_URL and TASKQL_TOKEN. */
export function urlAndToken(script) {
  const [url = process.env.TASKQL_URL, token = process.env.TASKQL_TOKEN] = process.argv.slice(2);
  if (!url || !token) {
    console.error(`usage: node ${script} URL TOKEN (or set TASKQL_URL and TASKQL_TOKEN)`);
    process.exit(2);
  }
  return { url, token };
}

/** The request's headers, with the access token's value left out. */
function redacted(headers) {
  const shown = Object.fromEntries(headers);
  if (shown.authorization) shown.authorization = shown.authorization.replace(/ .*/, " <token>");
  return shown;
}

/** What one request carried and what came back, read from either the URL (GET) or the body (POST). */
async function record(input, init, response) {
  const method = (init?.method ?? "GET").toUpperCase();
  const target = new URL(String(input));
  let sent;
  if (method === "GET") {
    const param = (name) => target.searchParams.get(name);
    const json = (name) => (param(name) === null ? undefined : JSON.parse(param(name)));
    sent = {
      query: param("query") ?? undefined,
      operationName: param("operationName") ?? undefined,
      variables: json("variables"),
      extensions: json("extensions"),
    };
  } else {
    sent = JSON.parse(init.body);
  }
  const text = await response.clone().text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return {
    method,
    path: target.pathname,
    headers: redacted(new Headers(init?.headers ?? {})),
    urlHasQuery: target.searchParams.has("query"),
    hasQuery: typeof sent.query === "string",
    query: sent.query ?? null,
    operationName: sent.operationName ?? null,
    variables: sent.variables ?? null,
    persistedQuery: sent.extensions?.persistedQuery ?? null,
    status: response.status,
    contentType: response.headers.get("content-type"),
    body,
  };
}

/** A fetch that appends what each request carried, and its answer, to `requests`. */
export function recordingFetch(requests) {
  return async (input, init) => {
    const response = await fetch(input, init);
    requests.push(await record(input, init, response));
    return response;
  };
}
