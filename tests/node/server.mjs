#!/usr/bin/env node
// The TypeScript SDK's own streamable HTTP server, on the design of its `simpleStreamableHttp`
// example: one transport and one McpServer per session, the example's InMemoryEventStore
// (resumable), notifications on the request's own stream. A peer for bench/ (#18), written
// here, next to the client, because this folder's node_modules holds the SDK.
//
//   node server.mjs --port 8123 [--event-store example|ordered]
//
// The example's InMemoryEventStore replays by sorting every event id as a string, and its
// ids are `<stream>_<millisecond>_<random>`: events stored in the same millisecond come
// back in random order, so a resumed stream skips or repeats some of a burst
// (typescript-sdk#943; the fix is PR #1978). `--event-store ordered` swaps in a store that
// replays in the order it stored, the one bench/ uses for its replay rows.
//
// Its tool takes the service's arguments: `count` notifications to `caller`, `interval`
// seconds apart (the example's own tool counts in milliseconds and takes no caller).

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import * as z from "zod/v4";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";

const { values } = parseArgs({
  options: { port: { type: "string", default: "8123" }, "event-store": { type: "string", default: "example" } },
});

/** The example store's interface, replaying a stream's events in the order they were stored. */
class OrderedEventStore {
  constructor() {
    this.streams = new Map(); // stream id -> [event id, message][]
    this.positions = new Map(); // event id -> [stream id, index in its stream]
    this.next = 0;
  }

  async storeEvent(streamId, message) {
    const eventId = `${streamId}_${this.next++}`;
    let events = this.streams.get(streamId);
    if (events === undefined) this.streams.set(streamId, (events = []));
    this.positions.set(eventId, [streamId, events.length]);
    events.push([eventId, message]);
    return eventId;
  }

  async replayEventsAfter(lastEventId, { send }) {
    const position = this.positions.get(lastEventId);
    if (position === undefined) return "";
    const [streamId, index] = position;
    const events = this.streams.get(streamId);
    for (let i = index + 1; i < events.length; i++) await send(events[i][0], events[i][1]);
    return streamId;
  }
}

const EVENT_STORES = { example: InMemoryEventStore, ordered: OrderedEventStore };
if (!Object.hasOwn(EVENT_STORES, values["event-store"])) {
  throw new Error(`--event-store: one of ${Object.keys(EVENT_STORES).join(", ")}`);
}
const EventStore = EVENT_STORES[values["event-store"]];

function buildServer() {
  const server = new McpServer({ name: "ts-sdk-peer", version: "1.0.0" }, { capabilities: { logging: {} } });
  server.registerTool(
    "start-notification-stream",
    {
      description: "Send `count` notifications to `caller`, `interval` seconds apart",
      inputSchema: {
        interval: z.number().min(0).default(0),
        count: z.number().int().min(1).default(1),
        caller: z.string().default("bench"),
      },
    },
    async ({ interval, count, caller }, extra) => {
      for (let index = 1; index <= count; index++) {
        if (index > 1 && interval > 0) await new Promise((resolve) => setTimeout(resolve, interval * 1000));
        await extra.sendNotification({
          method: "notifications/message",
          params: { level: "info", data: `Notification ${index}/${count} for ${caller}` },
        });
      }
      return { content: [{ type: "text", text: `Sent ${count} notifications to ${caller}` }] };
    },
  );
  return server;
}

const transports = new Map();
const app = createMcpExpressApp();

app.post("/mcp", async (req, res) => {
  const sessionId = req.headers["mcp-session-id"];
  let transport = sessionId ? transports.get(sessionId) : undefined;
  if (!transport) {
    if (sessionId || !isInitializeRequest(req.body)) {
      res.status(sessionId ? 404 : 400).json({ jsonrpc: "2.0", error: { code: -32000, message: "No such session" }, id: null });
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new EventStore(),
      onsessioninitialized: (id) => transports.set(id, transport),
    });
    transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
    await buildServer().connect(transport);
  }
  await transport.handleRequest(req, res, req.body);
});

async function existing(req, res) {
  const transport = transports.get(req.headers["mcp-session-id"]);
  if (!transport) {
    res.status(404).json({ jsonrpc: "2.0", error: { code: -32000, message: "No such session" }, id: null });
    return;
  }
  await transport.handleRequest(req, res);
}

app.get("/mcp", existing);
app.delete("/mcp", existing);

const listener = app.listen(Number(values.port), "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${values.port}`);
});
// Node closes a keep-alive connection after 5 s idle; the load generator keeps a session's
// connection across pauses (the replay scenario's), as uvicorn lets it.
listener.keepAliveTimeout = 0;
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    for (const transport of transports.values()) transport.close();
    listener.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
