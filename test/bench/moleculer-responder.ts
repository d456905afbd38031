// Moleculer's responder in the request/reply bench: a ServiceBroker with one action that answers
// the bench's QueryRequest with the same reply the Machina endpoint builds (payloads.ts), over the
// NATS transporter, in its own process (forked by request-reply.bench.ts, like responder.ts).
//
//   node --import tsx test/bench/moleculer-responder.ts <namespace>
//
// Reads MACHINA_NATS_URL. The action declares no params schema, Moleculer's default: it
// validates only what an action declares. Speaks responder.ts' IPC protocol: {ready, subject}
// (subject: the action's name), stops on "stop", on IPC disconnect and on SIGTERM/SIGINT.
import { ServiceBroker } from "moleculer";
import type { Context } from "moleculer";
import type { QueryRequest } from "@machina/protos";
import {
  MOLECULER_ACTION,
  MOLECULER_ACTION_NAME,
  MOLECULER_SERVICE,
  checkLegacyNats,
  moleculerBrokerOptions,
} from "./moleculer-caller";
import { replyTo } from "./payloads";
import type { ResponderMessage } from "./responder";

const [namespace] = process.argv.slice(2);
const url = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:44222";

function send(m: ResponderMessage): void {
  if (process.send) process.send(m);
  else console.log(JSON.stringify(m));
}

let stopping: Promise<void> | undefined;
let stopFn: () => Promise<void> = async () => undefined;

function shutdown(code: number): void {
  stopping ??= (async () => {
    // A stop that hangs must not keep the process alive.
    const force = setTimeout(() => process.exit(code || 1), 5000);
    force.unref();
    await stopFn().catch(() => undefined);
    process.exit(code);
  })();
}

async function main(): Promise<void> {
  if (!namespace || !/^[a-z][a-z0-9]*$/.test(namespace)) {
    throw new Error(
      `usage: moleculer-responder.ts <namespace> (lower-case letters and digits); got ${process.argv.slice(2).join(" ")}`,
    );
  }
  process.on("message", (m) => {
    if (m === "stop") shutdown(0);
  });
  process.on("disconnect", () => shutdown(0));
  process.on("SIGTERM", () => shutdown(0));
  process.on("SIGINT", () => shutdown(0));
  await checkLegacyNats(url);
  const broker = new ServiceBroker(moleculerBrokerOptions(url, namespace, "responder"));
  broker.createService({
    name: MOLECULER_SERVICE,
    actions: {
      [MOLECULER_ACTION]: (ctx: Context<QueryRequest>) => replyTo(ctx.params),
    },
  });
  await broker.start();
  stopFn = () => broker.stop();
  send({ type: "ready", subject: MOLECULER_ACTION_NAME });
}

main().catch((err: unknown) => {
  send({ type: "error", message: String((err as Error)?.stack ?? err) });
  shutdown(1);
});
