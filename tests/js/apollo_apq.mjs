// Apollo Client's persisted-query link, unmodified, against a live taskql server.
//
//   node apollo_apq.mjs URL TOKEN        (or TASKQL_URL and TASKQL_TOKEN in the environment)
//
// Four fresh clients (each a new ApolloClient, link and cache, so none remembers what a previous one
// learnt), one after the other against the same server:
//   post-first   Me over POST: the hash alone, PersistedQueryNotFound, then the query with its hash
//   post-second  Me over POST: the hash alone suffices, the document now lives in Redis
//   get-first    TaskPage with useGETForHashedQueries: the hash over GET, not found, the query over POST
//   get-second   TaskPage with useGETForHashedQueries: the hash over GET suffices
// Every HTTP request a link makes is recorded (through its fetch) and printed, with each client's
// result, as one JSON document on stdout. Nothing here asserts: tests/test_apollo_client.py does.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url = process.env.TASKQL_URL, token = process.env.TASKQL_TOKEN] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node apollo_apq.mjs URL TOKEN (or set TASKQL_URL and TASKQL_TOKEN)");
  process.exit(2);
}

const QUERIES = new URL("../../graphql/queries/", import.meta.url);
const document = (name) => gql(readFileSync(new URL(`${name}.graphql`, QUERIES), "utf8"));
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

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

async function run(name, { operation, variables, useGETForHashedQueries }) {
  const requests = [];
  const fetchAndRecord = async (input, init) => {
    const response = await fetch(input, init);
    requests.push(await record(input, init, response));
    return response;
  };
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([
      // createPersistedQueryLink({ sha256 }) is this constructor's deprecated alias in Apollo Client 4.
      new PersistedQueryLink({ sha256, useGETForHashedQueries }),
      new HttpLink({ uri: url, fetch: fetchAndRecord, headers: { authorization: `Bearer ${token}` } }),
    ]),
  });
  let result;
  try {
    const { data, error } = await client.query({
      query: document(operation),
      variables,
      fetchPolicy: "network-only",
    });
    result = { data: data ?? null, error: error ? String(error) : null };
  } catch (error) {
    result = { data: null, error: String(error?.stack ?? error) };
  } finally {
    client.stop();
  }
  return { name, operation, useGETForHashedQueries, requests, result };
}

const runs = [];
for (const [name, options] of [
  ["post-first", { operation: "Me", useGETForHashedQueries: false }],
  ["post-second", { operation: "Me", useGETForHashedQueries: false }],
  ["get-first", { operation: "TaskPage", variables: { first: 10 }, useGETForHashedQueries: true }],
  ["get-second", { operation: "TaskPage", variables: { first: 10 }, useGETForHashedQueries: true }],
]) {
  runs.push(await run(name, options));
}
const { version } = JSON.parse(
  readFileSync(new URL("node_modules/@apollo/client/package.json", import.meta.url), "utf8"),
);
process.stdout.write(`${JSON.stringify({ apolloClient: version, node: process.version, runs }, null, 2)}\n`);
