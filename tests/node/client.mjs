#!/usr/bin/env node
// Minimal MCP client CLI built on the official TypeScript SDK, so pytest can check
// the service against a real third-party client (not just the Python SDK).
//
//   node client.mjs '<json-config>'
//
// Config keys (all optional except url; tool is required unless listTools):
//   url              MCP endpoint, e.g. "http://127.0.0.1:8000/mcp"
//   tool, arguments  tool to call and its arguments
//   listTools        true => print {"tools": [names]} instead of calling a tool
//   headers          extra HTTP headers sent on every request (e.g. Authorization)
//   progress         true => pass `onprogress`, which makes the SDK send a progressToken
//   sessionId        reuse an existing session: the SDK then skips `initialize`
//   protocolVersion  with sessionId: MCP-Protocol-Version header to send (otherwise none,
//                    since it is normally learned from the skipped `initialize`)
//   resumptionToken  resume an interrupted call: the SDK sends no POST, it opens a GET
//                    with Last-Event-ID and replays the stream (needs sessionId too)
//   disconnectAfterLogs  N => drop the connection after the N-th log notification and
//                    print what was seen so far with "result": null (the server keeps the
//                    session; feed sessionId + lastEventId to a second run to resume)
//   mode             "terminate" => DELETE the session (terminateSession) before closing
//   timeoutMs        per-request timeout (default 60000)
//
// Prints exactly one JSON line on stdout; exit code 0 on success, 1 on error.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

async function run(cfg) {
  const transport = new StreamableHTTPClientTransport(new URL(cfg.url), {
    requestInit: { headers: cfg.headers ?? {} },
    sessionId: cfg.sessionId ?? undefined,
  });
  if (cfg.sessionId && cfg.protocolVersion) transport.setProtocolVersion(cfg.protocolVersion);
  const client = new Client({ name: 'ts-harness', version: '0.1.0' });

  // Logging notifications can arrive on the POST's SSE stream or on the standalone
  // GET stream; the SDK funnels both into this handler, in arrival order.
  const logs = [];
  let lastEventId = cfg.resumptionToken ?? null;
  let dropped = false;
  let tokenAtDrop = null;
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    // After the simulated drop the application has stopped listening: what the SDK still
    // delivers from its buffers is not recorded, just as its resumption token is not.
    if (dropped) return;
    logs.push(n.params.data);
    if (logs.length === cfg.disconnectAfterLogs) {
      // Abort every HTTP stream; the pending callTool then rejects (ConnectionClosed).
      dropped = true;
      tokenAtDrop = lastEventId;
      void transport.close();
    }
  });

  await client.connect(transport);
  try {
    if (cfg.listTools) {
      const { tools } = await client.listTools();
      return { tools: tools.map((t) => t.name) };
    }

    const progress = [];
    const options = {
      timeout: cfg.timeoutMs ?? 60000,
      // Only SSE events that carry an `id:` (i.e. the server has an event store)
      // produce resumption tokens; without one this stays null. Note: when resuming
      // (resumptionToken set) SDK 1.32.2 does not call this for the replayed stream.
      onresumptiontoken: (token) => {
        if (!dropped) lastEventId = token;
      },
    };
    if (cfg.progress) {
      // Progress notifications are routed by progressToken (= the request's JSON-RPC id)
      // to this callback only; they never reach setNotificationHandler. After a
      // cross-process resume the replayed ones carry the old id and are dropped.
      options.onprogress = (p) => progress.push(p.progress);
      options.resetTimeoutOnProgress = true;
    }
    if (cfg.resumptionToken) options.resumptionToken = cfg.resumptionToken;

    let result = null;
    try {
      result = await client.callTool(
        { name: cfg.tool, arguments: cfg.arguments ?? {} }, undefined, options);
    } catch (err) {
      if (!dropped) throw err;
    }

    const out = {
      sessionId: transport.sessionId ?? null,
      protocolVersion: transport.protocolVersion ?? null,
      logs,
      progress,
      result,
      lastEventId: dropped ? tokenAtDrop : lastEventId,
    };
    // terminateSession() clears transport.sessionId, so `out` is captured first.
    if (cfg.mode === 'terminate') await transport.terminateSession();
    return out;
  } finally {
    await client.close();
  }
}

try {
  if (process.argv.length !== 3) throw new Error('usage: node client.mjs <json-config>');
  const out = await run(JSON.parse(process.argv[2]));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exitCode = 0;
} catch (err) {
  // Node's fetch hides the real reason (e.g. ECONNREFUSED) in err.cause.
  const cause = err?.cause?.message ? `: ${err.cause.message}` : '';
  process.stdout.write(JSON.stringify({ error: `${err?.message ?? String(err)}${cause}` }) + '\n');
  process.exitCode = 1;
}
