// graphql-ws's own client (createClient), unmodified, subscribed to taskEvents on a live taskql server.
//
//   node graphql_ws.mjs WS_URL TOKEN [AFTER]
//
// The token goes in connection_init ({authorization: "Bearer …"}); with AFTER (a cursor), the subscription
// resumes from it (variables: {after}). Node 20 has no global WebSocket: the client gets ws's.
//
// What the client reports is printed as it happens, one JSON object a line on stdout:
//   {"type": "start", "graphqlWs": "6.4.2", "ws": "8.23.0", "node": "v20…"}
//   {"type": "connected"}                          on.connected: the server acknowledged connection_init.
//                                                  The client sends its subscribe message only after this,
//                                                  and graphql-transport-ws acknowledges no subscription:
//                                                  it is live from its first event on, not from here.
//   {"type": "next", "payload": {"data": …}}       each result the sink gets
//   {"type": "error", "code": 4403, "reason": …}   the sink's error: a close event (code, reason), GraphQL
//                                                  errors ({errors}) or anything else ({message})
//   {"type": "complete"}                           the sink completed
//   {"type": "closed", "code": 1000, "reason": …}  on.closed
//   {"type": "exit"}                               the last line
// It runs until the subscription ends (an error, or complete) or its standard input closes; then it
// unsubscribes, disposes of the client, waits for the socket to close and exits 0. Nothing here asserts:
// tests/test_graphql_ws_client.py does.

import { readFileSync } from "node:fs";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, after] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node graphql_ws.mjs WS_URL TOKEN [AFTER]");
  process.exit(2);
}

const TASK_EVENTS = `
  subscription TaskEvents($after: String) {
    taskEvents(after: $after) { cursor kind taskId task { id title } at }
  }
`;

const report = (line) => process.stdout.write(`${JSON.stringify(line)}\n`); // a pipe: written at once
const version = (name) =>
  JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, import.meta.url), "utf8")).version;

/** What the sink's error was: a CloseEvent, a list of GraphQL errors, or something else. */
function described(error) {
  if (Array.isArray(error)) return { errors: error };
  if (typeof error?.code === "number") return { code: error.code, reason: error.reason ?? "" };
  return { message: String(error?.stack ?? error) };
}

report({ type: "start", graphqlWs: version("graphql-ws"), ws: version("ws"), node: process.version });

let open = false;
let ending = false;
let exited = false;

function exit() {
  if (exited) return;
  exited = true;
  report({ type: "exit" });
  process.exit(0);
}

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  // By default the client retries 5 times, a 4403 included ("might grant access after retry"), and
  // subscribes again without the cursor: the tests would not see each close, nor where it resumed.
  retryAttempts: 0,
  on: {
    connected: () => {
      open = true;
      report({ type: "connected" });
    },
    closed: (event) => {
      open = false;
      report({ type: "closed", code: event?.code ?? null, reason: event?.reason ?? "" });
      if (ending) exit();
    },
  },
});

const unsubscribe = client.subscribe(
  { query: TASK_EVENTS, variables: after ? { after } : {} },
  {
    next: (payload) => report({ type: "next", payload }),
    error: (error) => {
      report({ type: "error", ...described(error) });
      end();
    },
    complete: () => {
      report({ type: "complete" });
      end();
    },
  },
);

function end() {
  if (ending) return;
  ending = true;
  unsubscribe(); // sends complete for the operation; the lazy client then closes the socket (1000)
  client.dispose();
  if (!open) exit();
  setTimeout(exit, 5000); // in case the close never comes
}

process.stdin.on("end", end);
process.stdin.resume();
