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

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

import { installedVersion, operationText, recordingFetch, urlAndToken } from "./recorded_fetch.mjs";

const { url, token } = urlAndToken("apollo_apq.mjs");
const document = (name) => gql(operationText(name));
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

async function run(name, { operation, variables, useGETForHashedQueries }) {
  const requests = [];
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([
      // createPersistedQueryLink({ sha256 }) is this constructor's deprecated alias in Apollo Client 4.
      new PersistedQueryLink({ sha256, useGETForHashedQueries }),
      new HttpLink({
        uri: url,
        fetch: recordingFetch(requests),
        headers: { authorization: `Bearer ${token}` },
      }),
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
const apolloClient = installedVersion("@apollo/client");
process.stdout.write(`${JSON.stringify({ apolloClient, node: process.version, runs }, null, 2)}\n`);
