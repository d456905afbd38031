// Responder process of the request/reply bench, forked by request-reply.bench.ts so requester and
// responder do not share an event loop or a core.
//
//   node --import tsx test/bench/responder.ts raw|mesh <prefix>
//
// raw:  a plain nc.subscribe() that answers every request with the same fixed JSON bytes.
// mesh: a Machina service (startService) with one QueryRequest → QueryResponse endpoint: the
//       full path (Content-Type negotiation, decode, handler, encode, timing header, metrics).
//
// Reads MACHINA_NATS_URL; speaks the IPC protocol of responder-process.ts.
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { defineEndpoint, startService } from "@machina/runtime";
import type { RunningService, ServiceSpec } from "@machina/runtime";
import { encodeBody } from "@machina/wire";
import { REQUEST, replyTo } from "./payloads";
import { runResponder } from "./responder-process";

const [kind, prefix] = process.argv.slice(2);
const url = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:44222";

async function startRaw(subject: string): Promise<() => Promise<void>> {
  const nc: NatsConnection = await connect({ servers: url, name: "bench-raw-responder", noAsyncTraces: true });
  const body = encodeBody("QueryResponse", replyTo(REQUEST), "json");
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) msg.respond(body);
    },
  });
  await nc.flush();
  return async () => {
    await nc.drain();
  };
}

async function startMesh(subject: string): Promise<() => Promise<void>> {
  const configDir = mkdtempSync(path.join(tmpdir(), "machina-bench-cfg-"));
  const spec: ServiceSpec<Record<string, never>> = {
    name: "fetch",
    version: "0.0.0-bench",
    description: "request/reply bench responder",
    httpPort: 0,
    async setup() {
      return {
        endpoints: [
          defineEndpoint({
            name: "bench-query",
            subject,
            request: "QueryRequest",
            reply: "QueryResponse",
            async handler(req) {
              return replyTo(req);
            },
          }),
        ],
      };
    },
  };
  const svc: RunningService<Record<string, never>> = await startService(spec, {
    handleSignals: false,
    configDir,
    env: {
      MACHINA_NATS_URL: url,
      MACHINA_MESH_PREFIX: prefix,
      MACHINA_HTTP_PORT: "0",
      MACHINA_LOG_LEVEL: "silent",
      LOG_LEVEL: "silent",
    },
  });
  await svc.ctx.nc.flush();
  return async () => {
    // startService creates the pipeline streams of its prefix; the bench leaves none behind.
    for (const s of Object.values(svc.ctx.names.streams)) await svc.ctx.jsm.streams.delete(s).catch(() => undefined);
    await svc.stop();
    rmSync(configDir, { recursive: true, force: true });
  };
}

runResponder(async () => {
  if ((kind !== "raw" && kind !== "mesh") || !prefix || !/^[a-z][a-z0-9]*$/.test(prefix)) {
    throw new Error(
      `usage: responder.ts raw|mesh <prefix> (prefix: lower-case letters and digits); got ${process.argv.slice(2).join(" ")}`,
    );
  }
  const subject = `${prefix}.bench.${kind}`;
  return { subject, stop: kind === "raw" ? await startRaw(subject) : await startMesh(subject) };
});
