// Moleculer's caller in the request/reply bench, and the broker settings both Moleculer processes
// share. The bench process is the caller (as it is the requester of every other row); the
// responder runs in its own process (moleculer-responder.ts), over the same nats-server.
//
// Broker options are Moleculer's defaults (JSON serializer, its own balancer, heartbeats) except
// that it logs nothing, has the bench's request time-out, and leaves process signals to us.
import { ServiceBroker } from "moleculer";
import type { BrokerOptions } from "moleculer";
import { connect as connectLegacyNats } from "nats";
import type { QueryRequest } from "@machina/protos";

/** The service and action the Moleculer responder registers. */
export const MOLECULER_SERVICE = "bench";
export const MOLECULER_ACTION = "query";
/** How the caller names it. */
export const MOLECULER_ACTION_NAME = `${MOLECULER_SERVICE}.${MOLECULER_ACTION}`;

/** Broker options of both Moleculer processes. */
export function moleculerBrokerOptions(url: string, namespace: string, role: "caller" | "responder"): BrokerOptions {
  return {
    namespace,
    nodeID: `${namespace}-${role}`,
    transporter: { type: "NATS", options: { url } },
    logger: false,
    requestTimeout: 5000,
    skipProcessEventRegistration: true,
  };
}

/**
 * Moleculer's NATS transporter loads the legacy `nats` (v2) client itself and, when the server is
 * not there, keeps reconnecting instead of failing; one connect with that same client first makes
 * a wrong URL or a missing install fail now, with its reason.
 */
export async function checkLegacyNats(url: string): Promise<void> {
  const nc = await connectLegacyNats({ servers: url, name: "bench-moleculer-probe" }).catch((err: unknown) => {
    throw new Error(`Moleculer's NATS client (nats v2) cannot reach ${url}: ${(err as Error).message}`);
  });
  await nc.close();
}

/** A started Moleculer caller. */
export interface MoleculerCaller {
  /** Calls the responder's action with `params` and resolves with its reply. */
  call(params: QueryRequest): Promise<unknown>;
  stop(): Promise<void>;
}

/** Starts the caller broker and waits until it has discovered the responder's service. */
export async function startMoleculerCaller(
  url: string,
  namespace: string,
  timeoutMs: number,
): Promise<MoleculerCaller> {
  await checkLegacyNats(url);
  const broker = new ServiceBroker(moleculerBrokerOptions(url, namespace, "caller"));
  await broker.start();
  try {
    await broker.waitForServices(MOLECULER_SERVICE, timeoutMs);
  } catch (err) {
    await broker.stop().catch(() => undefined);
    throw new Error(`Moleculer caller did not discover service "${MOLECULER_SERVICE}": ${(err as Error).message}`);
  }
  return {
    call: (params) => broker.call(MOLECULER_ACTION_NAME, params),
    stop: () => broker.stop(),
  };
}
