// urql's persistedExchange (@urql/exchange-persisted), unmodified, in front of @urql/core's fetchExchange,
// against a live taskql server.
//
//   node urql_persisted.mjs URL TOKEN     (or TASKQL_URL and TASKQL_TOKEN in the environment)
//
// Runs fresh clients (each a new Client and exchanges, so none remembers what a previous one learnt), one
// after the other against the same server; TASKQL_RUNS (comma-separated names) picks some, in its order:
//   post-first      Me over POST: the hash alone, PersistedQueryNotFound, then the query with its hash
//   post-second     Me over POST: the hash alone suffices, the document now lives in Redis
//   defaults        TaskPage with persistedExchange's defaults (hashed queries over GET, in version 5) and no
//                   Apollo-Require-Preflight header
//   get-first       TaskPage over GET (preferGetForPersistedQueries) with the header: the hash, not found,
//                   then the query with its hash
//   get-second      TaskPage over GET with the header: the hash alone suffices
//   trusted         TaskPage over GET with the header, hashed by the manifest's id (generateHash) and
//                   enforcePersistedQueries (never sends the document, even on a miss)
// Against a server with PERSISTED_QUERIES=trusted-only, trusted still works and get-first's query is refused.
// Every HTTP request the fetchExchange makes is recorded (through its fetch) and printed, with each client's
// result, as one JSON document on stdout. Nothing here asserts: tests/test_urql_client.py does.

import { readFileSync } from "node:fs";

import { Client, fetchExchange } from "@urql/core";
import { persistedExchange } from "@urql/exchange-persisted";

import { MANIFEST, installedVersion, operationText, recordingFetch, urlAndToken } from "./recorded_fetch.mjs";

const { url, token } = urlAndToken("urql_persisted.mjs");
// The trusted documents' ids (the SHA-256 of each file in graphql/queries), by operation name.
const { operations } = JSON.parse(readFileSync(MANIFEST, "utf8"));
const manifestIds = new Map(operations.map((operation) => [operation.name, operation.id]));
const operationName = (document) =>
  document.definitions.find((definition) => definition.kind === "OperationDefinition")?.name?.value;

const TASK_PAGE = { operation: "TaskPage", variables: { first: 10 } };
// urql sends no Content-Type on a GET, so CSRF prevention wants this header on its GETs.
const PREFLIGHT = { "apollo-require-preflight": "true" };
const RUNS = {
  "post-first": { operation: "Me", persisted: { preferGetForPersistedQueries: false } },
  "post-second": { operation: "Me", persisted: { preferGetForPersistedQueries: false } },
  defaults: { ...TASK_PAGE, persisted: {} },
  "get-first": { ...TASK_PAGE, headers: PREFLIGHT, persisted: { preferGetForPersistedQueries: true } },
  "get-second": { ...TASK_PAGE, headers: PREFLIGHT, persisted: { preferGetForPersistedQueries: true } },
  trusted: {
    ...TASK_PAGE,
    headers: PREFLIGHT,
    persisted: {
      preferGetForPersistedQueries: true,
      enforcePersistedQueries: true,
      generateHash: async (_query, document) => manifestIds.get(operationName(document)),
    },
  },
};

async function run(name, { operation, variables, headers = {}, persisted }) {
  const requests = [];
  const client = new Client({
    url,
    fetch: recordingFetch(requests),
    fetchOptions: { headers: { authorization: `Bearer ${token}`, ...headers } },
    requestPolicy: "network-only",
    exchanges: [persistedExchange(persisted), fetchExchange],
  });
  let result;
  try {
    const { data, error } = await client.query(operationText(operation), variables).toPromise();
    result = { data: data ?? null, error: error ? String(error) : null };
  } catch (error) {
    result = { data: null, error: String(error?.stack ?? error) };
  }
  const shown = ([key, value]) => [key, typeof value === "function" ? "<function>" : value];
  const options = Object.fromEntries(Object.entries(persisted).map(shown));
  return { name, operation, headers, persisted: options, requests, result };
}

const names = process.env.TASKQL_RUNS ? process.env.TASKQL_RUNS.split(",") : Object.keys(RUNS);
const runs = [];
for (const name of names) {
  if (!RUNS[name]) throw new Error(`unknown run ${name}: one of ${Object.keys(RUNS).join(", ")}`);
  runs.push(await run(name, RUNS[name]));
}
const versions = Object.fromEntries(
  ["@urql/core", "@urql/exchange-persisted"].map((name) => [name, installedVersion(name)]),
);
process.stdout.write(`${JSON.stringify({ ...versions, node: process.version, runs }, null, 2)}\n`);
