// Moleculer's responder in the request/reply bench: a ServiceBroker with one action that answers
// the bench's QueryRequest with the same reply the Machina endpoint builds (payloads.ts), over the
// NATS transporter, in its own process (forked by request-reply.bench.ts, like responder.ts).
//
//   node --import tsx test/bench/moleculer-responder.ts <namespace>
//
// Reads MACHINA_NATS_URL. The action declares no params schema, Moleculer's default: it
// validates only what an action declares. Speaks the IPC protocol of responder-process.ts
// (its subject: the action's name).
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
import { runResponder } from "./responder-process";

const [namespace] = process.argv.slice(2);
const url = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:44222";

runResponder(async () => {
  if (!namespace || !/^[a-z][a-z0-9]*$/.test(namespace)) {
    throw new Error(
      `usage: moleculer-responder.ts <namespace> (lower-case letters and digits); got ${process.argv.slice(2).join(" ")}`,
    );
  }
  await checkLegacyNats(url);
  const broker = new ServiceBroker(moleculerBrokerOptions(url, namespace, "responder"));
  broker.createService({
    name: MOLECULER_SERVICE,
    actions: {
      [MOLECULER_ACTION]: (ctx: Context<QueryRequest>) => replyTo(ctx.params),
    },
  });
  await broker.start();
  return { subject: MOLECULER_ACTION_NAME, stop: () => broker.stop() };
});
