import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Svcm } from "@nats-io/services";
import type { Service } from "@nats-io/services";
import type convict from "convict";
import { baseSchema, loadProcessConfig } from "@machina/config";
import type { BaseConfig, ConfigSourceOptions } from "@machina/config";
import { createRootLogger } from "@machina/log";
import type { Logger } from "@machina/log";
import type { NodeInfo } from "@machina/protos";
import { meshNames } from "@machina/subjects";
import type { MeshNames, ServiceName } from "@machina/subjects";
import { addEndpoint } from "./endpoint";
import type { EndpointDef } from "./endpoint";
import { startWorker } from "./durable-worker";
import type { RunningWorker, WorkerDef } from "./durable-worker";
import { startProbeServer } from "./http-probe";
import type { ProbeServer } from "./http-probe";
import { MeshClient } from "./mesh-client";
import { createMetrics } from "./metrics";
import type { ServiceMetrics } from "./metrics";
import { collectNodeInfo } from "./node-info";
import { Health } from "./health";
import { ensureDurable, ensureStream, pipelineStreams } from "./topology";

/** Everything a service's setup gets: config, connections, names, logging, metrics. */
export interface ServiceContext<C> {
  config: C & BaseConfig;
  /** Which layer a config key came from (env, file, default). */
  configOrigin(key: string): string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kvm: Kvm;
  names: MeshNames;
  log: Logger;
  metrics: ServiceMetrics;
  /** Dependencies this process is waiting for; /readyz answers 503 while any is listed. */
  health: Health;
  client: MeshClient;
  node: NodeInfo;
  /** Where config files live and which mode applies (components load from here too). */
  configSource: ConfigSourceOptions;
}

/** What setup returns: the endpoints and workers to run, and how to release its own resources. */
export interface ServiceParts {
  endpoints?: EndpointDef[];
  workers?: WorkerDef[];
  /** Called after endpoints and workers stopped, before NATS drains. */
  onStop?(): Promise<void>;
}

/** A deployable service. */
export interface ServiceSpec<C> {
  name: ServiceName;
  version: string;
  description: string;
  /** Service-specific convict schema, merged with the base schema. */
  schema?: convict.Schema<C>;
  /** Default probe port. */
  httpPort: number;
  /** `processor` serves work, `scheduler` only sends. Default processor. */
  role?: "processor" | "scheduler";
  setup(ctx: ServiceContext<C>): Promise<ServiceParts>;
}

/** A running service instance. */
export interface RunningService<C> {
  ctx: ServiceContext<C>;
  service: Service;
  probePort: number;
  /** Drains and stops; resolves when everything is closed. */
  stop(): Promise<void>;
}

/** Options of startService, mostly for tests. */
export interface StartOptions extends ConfigSourceOptions {
  /** Install SIGTERM/SIGINT handlers that stop and exit. Default true. */
  handleSignals?: boolean;
}

/**
 * Starts a service: strict config, NATS connection, pipeline streams, micro-service endpoints in
 * one queue group per service, durable workers, probe HTTP port, vertex registration, and a
 * clean drain on SIGTERM.
 */
export async function startService<C>(spec: ServiceSpec<C>, opts: StartOptions = {}): Promise<RunningService<C>> {
  const schema = { ...baseSchema({ httpPort: spec.httpPort }), ...(spec.schema ?? {}) } as convict.Schema<
    C & BaseConfig
  >;
  const loaded = loadProcessConfig<C & BaseConfig>(spec.name, schema, opts);
  const config = loaded.values;
  const log = createRootLogger({ service: spec.name, node: config.mesh.node, level: config.log.level });
  const names = meshNames(config.mesh.prefix);
  const metrics = createMetrics(spec.name);
  const health = new Health();

  const nc = await connect({
    servers: config.nats.url.split(","),
    name: `${spec.name}:${config.mesh.node}`,
    user: config.nats.user || undefined,
    pass: config.nats.pass || undefined,
    maxReconnectAttempts: -1,
    noAsyncTraces: true,
  });
  // A failed start must not leave a connection or a port open (the process would not exit).
  let probe: ProbeServer | undefined;
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    for (const cfg of Object.values(pipelineStreams(names, config.nats.replicas))) await ensureStream(jsm, cfg);

    const node = await collectNodeInfo({
      id: config.mesh.node,
      service: spec.name,
      role: spec.role ?? "processor",
      version: spec.version,
    });
    const ctx: ServiceContext<C> = {
      config,
      configOrigin: loaded.origin,
      nc,
      js,
      jsm,
      kvm: new Kvm(nc),
      names,
      log,
      metrics,
      health,
      client: new MeshClient(nc),
      node,
      configSource: { configDir: loaded.configDir, mode: loaded.mode, env: opts.env },
    };

    let ready = false;
    let draining = false;
    watchNats(nc, health, log);
    const server = await startProbeServer(config.http.host, config.http.port, metrics.registry, {
      healthy: () => !nc.isClosed(),
      ready: () => ready && !draining && !nc.isClosed() && health.ok(),
      info: () => ({
        service: spec.name,
        node: config.mesh.node,
        nats: nc.isClosed() ? "closed" : "connected",
        waitingFor: health.waiting(),
      }),
    });
    probe = server;

    const parts = await spec.setup(ctx);
    const svc = await new Svcm(nc).add({
      name: spec.name,
      version: spec.version,
      description: spec.description,
      queue: names.queue(spec.name),
      metadata: { prefix: names.prefix, node: config.mesh.node },
    });
    for (const ep of parts.endpoints ?? []) addEndpoint(svc, ep, spec.name, log, metrics);

    const workers: RunningWorker[] = [];
    for (const w of parts.workers ?? []) {
      const streamName = names.streams[w.stream];
      await ensureDurable(jsm, streamName, w.durable, w.filter, { maxAckPending: w.maxAckPending });
      workers.push(await startWorker(js, names, w, spec.name, log, metrics, health));
    }
    const lag = sampleLag(
      jsm,
      (parts.workers ?? []).map((w) => ({ stream: names.streams[w.stream], durable: w.durable })),
      metrics,
    );

    const heartbeat = startVertexLink(ctx, spec.role ?? "processor");
    // Subscriptions go out buffered: until the server has them, a request from another
    // connection finds no responder, so started means the server has them all.
    await nc.flush();
    ready = true;
    log.info(
      {
        probePort: server.port,
        endpoints: (parts.endpoints ?? []).map((e) => e.subject),
        workers: (parts.workers ?? []).map((w) => w.name),
      },
      "service started",
    );

    let stopped: Promise<void> | undefined;
    const stop = () =>
      (stopped ??= (async () => {
        draining = true;
        clearInterval(heartbeat);
        clearInterval(lag);
        await svc.stop().catch(() => undefined);
        await Promise.allSettled(workers.map((w) => w.stop()));
        await parts.onStop?.().catch((err: unknown) => log.error({ err }, "onStop failed"));
        await nc.drain().catch(() => undefined);
        await server.close();
        log.info("service stopped");
      })());

    if (opts.handleSignals ?? true) {
      const onSignal = (sig: string) => {
        log.info({ signal: sig }, "draining");
        stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
    }
    return { ctx, service: svc, probePort: server.port, stop };
  } catch (err) {
    await probe?.close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    throw err;
  }
}

// Readiness follows the NATS connection: work cannot move while it is down.
function watchNats(nc: NatsConnection, health: Health, log: Logger): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        health.fail("nats", `disconnected from ${String((s as { server?: unknown }).server ?? "the server")}`);
        log.warn("NATS disconnected; work waits until it reconnects");
      } else if (s.type === "reconnect") {
        health.recover("nats");
        log.info("NATS reconnected");
      }
    }
  })().catch(() => undefined);
}

// Consumer lag per durable, for /metrics (and so for a KEDA or HPA scaler on external metrics).
function sampleLag(
  jsm: JetStreamManager,
  consumers: { stream: string; durable: string }[],
  metrics: ServiceMetrics,
): NodeJS.Timeout {
  const sample = async () => {
    for (const c of consumers) {
      const info = await jsm.consumers.info(c.stream, c.durable).catch(() => null);
      if (info === null) continue;
      metrics.consumerPending.set({ stream: c.stream, consumer: c.durable }, info.num_pending);
      metrics.consumerAckPending.set({ stream: c.stream, consumer: c.durable }, info.num_ack_pending);
    }
  };
  void sample();
  const t = setInterval(() => void sample(), 5_000);
  t.unref();
  return t;
}

// Vertex may start after us or restart: connect is re-sent on every heartbeat and failures stay quiet.
function startVertexLink<C>(ctx: ServiceContext<C>, role: "processor" | "scheduler"): NodeJS.Timeout {
  const beat = () => {
    ctx.node.seenAt = Date.now();
    ctx.client
      .request(ctx.names.vertex.connect(role), "NodeInfo", ctx.node, "Ack", { timeoutMs: 2000 })
      .catch((err: unknown) => ctx.log.debug({ err }, "vertex not reachable yet"));
  };
  beat();
  const t = setInterval(beat, 5000);
  t.unref();
  return t;
}
