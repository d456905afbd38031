import { loadavg } from "node:os";
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
import type { HandlerTimes, NodeInfo } from "@machina/protos";
import { meshNames } from "@machina/subjects";
import type { MeshNames, ServiceName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { addEndpoint } from "./endpoint";
import type { EndpointDef } from "./endpoint";
import { startWorker } from "./durable-worker";
import { resourceGate } from "./resource-gate";
import type { ResourceGate } from "./resource-gate";
import type { RunningWorker, WorkerDef } from "./durable-worker";
import { startProbeServer } from "./http-probe";
import type { ProbeServer } from "./http-probe";
import { MeshClient } from "./mesh-client";
import { connectNats } from "./nats-connect";
import { createMetrics } from "./metrics";
import type { ServiceMetrics } from "./metrics";
import type { FastHistogram } from "./fast-metrics";
import { collectNodeInfo } from "./node-info";
import type { ComponentSet } from "./component-set";
import { LiveConfig } from "./config-follow";
import type { RunningCheck, ServiceComponents } from "./config-follow";
import { Health } from "./health";
import { ensureDurable, ensureSharedTopology } from "./topology";

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
  /** The components at the config chain's head as this instance starts: what setup compiles. */
  components: ComponentSet;
}

/** Starts and stops durable workers while a service runs (a new fetch source gets its own). */
export interface LiveWorkers {
  /** Names of the workers running now. */
  names(): string[];
  /** Creates the durable (if needed) and starts pulling; CONFLICT when a worker of that name runs. */
  add(def: WorkerDef): Promise<void>;
  /** Stops a worker (messages in hand finish); nothing when none of that name runs. */
  remove(name: string): Promise<void>;
}

/** What setup returns: the endpoints and workers to run, and how to release its own resources. */
export interface ServiceParts {
  endpoints?: EndpointDef[];
  workers?: WorkerDef[];
  /** Called after endpoints and workers stopped, before NATS drains. */
  onStop?(): Promise<void>;
  /**
   * Takes a new config head live (its components differ from the ones running): throw to keep
   * running the previous config, which the instance then keeps reporting as its head.
   */
  applyConfig?(set: ComponentSet, workers: LiveWorkers): Promise<void>;
  /**
   * Checks a proposed set against what this replica runs, when `config.validate.<service>`
   * asks (after the spec's `components.validate`): throw BAD_REQUEST to refuse a change
   * {@link applyConfig} could not make, so it is never stored.
   */
  checkConfig?: RunningCheck;
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
  /** The component kinds it owns and how a patch to them is checked (`config.validate.<service>`). */
  components?: ServiceComponents;
  /**
   * Process-wide settings that must precede reading the components (a V8 flag for the garbage a
   * big config leaves), given the process config; runs once, before anything connects. Default none.
   */
  prepare?(config: C & BaseConfig): void;
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
  spec.prepare?.(config);
  const log = createRootLogger({ service: spec.name, node: config.mesh.node, level: config.log.level });
  const names = meshNames(config.mesh.prefix);
  const metrics = createMetrics(spec.name);
  const health = new Health();

  const nc = await connectNats(config, spec.name, names);
  // A failed start must not leave a connection or a port open (the process would not exit).
  let probe: ProbeServer | undefined;
  let stopGate: () => void = () => undefined;
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await ensureSharedTopology(jsm, new Kvm(nc), names, config.nats.replicas, (why) => log.warn(why));

    const node = await collectNodeInfo({
      id: config.mesh.node,
      service: spec.name,
      role: spec.role ?? "processor",
      version: spec.version,
    });
    const configSource = { configDir: loaded.configDir, mode: loaded.mode, env: opts.env };
    // Setup compiles the components at the chain's head, so an instance started mid-chain runs it.
    const live = await LiveConfig.open({
      service: spec.name,
      kvm: new Kvm(nc),
      bucket: names.buckets.config,
      replicas: config.nats.replicas,
      configSource,
      log,
    });
    node.configHead = live.head;
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
      configSource,
      components: live.components(),
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
    addEndpoint(
      svc,
      live.validateEndpoint(names, spec.components, config.mesh.node, parts.checkConfig),
      spec.name,
      log,
      metrics,
    );
    addEndpoint(svc, live.defaultsEndpoint(names, spec.components), spec.name, log, metrics);

    const workers: RunningWorker[] = [];
    // One gate per process, made with its first worker (at start or added live): every worker's
    // tasks draw on the same machine.
    let gate: Promise<ResourceGate> | undefined;
    stopGate = () => void gate?.then((g) => g.stop()).catch(() => undefined);
    const byName = new Map<string, { running: RunningWorker; lag: LaggingConsumer }>();
    const startOne = async (w: WorkerDef) => {
      const streamName = names.streams[w.stream];
      await ensureDurable(jsm, streamName, w.durable, w.filter, { maxAckPending: w.maxAckPending });
      gate ??= resourceGate(config.resources);
      const running = await startWorker(js, names, w, spec.name, log, metrics, health, await gate);
      workers.push(running);
      byName.set(w.name, { running, lag: { stream: streamName, durable: w.durable } });
    };
    for (const w of parts.workers ?? []) await startOne(w);
    // Read at every sample, so a worker added live has its lag on /metrics like a start-up one.
    const lag = sampleLag(jsm, () => [...byName.values()].map((e) => e.lag), metrics);
    const liveWorkers: LiveWorkers = {
      names: () => [...byName.keys()],
      async add(w) {
        if (draining) throw new MachinaError("UNAVAILABLE", `${spec.name} is stopping; worker ${w.name} not started`);
        if (byName.has(w.name))
          throw new MachinaError("CONFLICT", `worker ${w.name} runs already`, { retryable: false });
        await startOne(w);
        lag.now();
      },
      async remove(name) {
        const entry = byName.get(name);
        if (entry === undefined) return;
        byName.delete(name);
        workers.splice(workers.indexOf(entry.running), 1);
        await entry.running.stop();
        // A gone worker's last lag would otherwise stay on /metrics (and in a scaler) forever.
        const labels = { stream: entry.lag.stream, consumer: entry.lag.durable };
        metrics.consumerPending.remove(labels);
        metrics.consumerAckPending.remove(labels);
      },
    };

    const heartbeat = startVertexLink(ctx, spec.role ?? "processor");
    const applyConfig = parts.applyConfig;
    const follower = await live.follow(
      spec.components,
      applyConfig === undefined ? undefined : (set) => applyConfig(set, liveWorkers),
      (head) => {
        node.configHead = head;
        // Vertex hears the new head now, not a heartbeat later: drift shows while it lasts only.
        heartbeat.beatNow();
      },
      log,
    );
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
        await follower?.stop();
        heartbeat.stop();
        clearInterval(lag.timer);
        await svc.stop().catch(() => undefined);
        await Promise.allSettled(workers.map((w) => w.stop()));
        stopGate();
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
    stopGate();
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

/** A durable whose lag is sampled. */
interface LaggingConsumer {
  stream: string;
  durable: string;
}

// Consumer lag per durable, for /metrics (and so for a KEDA or HPA scaler on external metrics).
function sampleLag(
  jsm: JetStreamManager,
  consumers: () => LaggingConsumer[],
  metrics: ServiceMetrics,
): { timer: NodeJS.Timeout; now(): void } {
  const sample = async () => {
    for (const c of consumers()) {
      const info = await jsm.consumers.info(c.stream, c.durable).catch(() => null);
      // Removed while it was asked: its gauges are gone and must stay gone.
      if (info === null || !consumers().some((x) => x.stream === c.stream && x.durable === c.durable)) continue;
      metrics.consumerPending.set({ stream: c.stream, consumer: c.durable }, info.num_pending);
      metrics.consumerAckPending.set({ stream: c.stream, consumer: c.durable }, info.num_ack_pending);
    }
  };
  void sample();
  const t = setInterval(() => void sample(), 5_000);
  t.unref();
  return { timer: t, now: () => void sample() };
}

// Vertex may start after us or restart: connect is re-sent on every heartbeat and failures stay quiet.
function startVertexLink<C>(
  ctx: ServiceContext<C>,
  role: "processor" | "scheduler",
): { stop(): void; beatNow(): void } {
  // Until vertex answers with its own interval; vertex drops an instance after three missed beats.
  let intervalMs = 5000;
  let last = 0;
  let cpuAt = performance.now();
  let cpu = process.cpuUsage();
  const started = Date.now();
  // The handler-time histograms /metrics shows, so vertex can take percentiles over any interval.
  const histograms = async (): Promise<HandlerTimes[]> => {
    const out: HandlerTimes[] = [];
    const read = async (kind: string, label: string, h: FastHistogram<string>) => {
      const byName = new Map<string, { buckets: [number, number][]; total: number; sum: number }>();
      for (const v of (await h.get()).values) {
        const labels = v.labels as Record<string, string | number | undefined>;
        const name = String(labels[label] ?? "");
        let e = byName.get(name);
        if (e === undefined) byName.set(name, (e = { buckets: [], total: 0, sum: 0 }));
        // Bucket values are cumulative already (calls at or under `le`).
        if (v.metricName?.endsWith("_bucket")) {
          if (labels.le !== "+Inf") e.buckets.push([Number(labels.le), v.value]);
        } else if (v.metricName?.endsWith("_count")) e.total = v.value;
        else if (v.metricName?.endsWith("_sum")) e.sum = v.value;
      }
      for (const [name, e] of byName) {
        e.buckets.sort((x, y) => x[0] - y[0]);
        out.push({
          kind,
          name,
          bounds: e.buckets.map((x) => x[0]),
          counts: [...e.buckets.map((x) => x[1]), e.total],
          sum: e.sum,
        });
      }
    };
    await read("endpoint", "endpoint", ctx.metrics.requestSeconds);
    await read("worker", "consumer", ctx.metrics.messageSeconds);
    return out;
  };
  const beat = async () => {
    const now = performance.now();
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const n = ctx.node;
    // CPU time over wall time since the previous beat, so a busy minute shows as busy now.
    n.cpuPercent = now > cpuAt ? ((used.user + used.system) / 1000 / (now - cpuAt)) * 100 : 0;
    cpuAt = now;
    n.load1 = loadavg()[0];
    n.rssBytes = process.memoryUsage.rss();
    n.uptimeMs = Date.now() - started;
    n.handlerTimes = await histograms().catch(() => []);
    n.seenAt = Date.now();
    const reply = await ctx.client.request(ctx.names.vertex.connect(role), "NodeInfo", n, "ConnectReply", {
      timeoutMs: 2000,
    });
    if (reply.heartbeatMs > 0) intervalMs = reply.heartbeatMs;
  };
  let beating = false;
  const tick = () => {
    if (beating || Date.now() - last < intervalMs) return;
    beating = true;
    last = Date.now();
    beat()
      .catch((err: unknown) => ctx.log.debug({ err }, "vertex not reachable yet"))
      .finally(() => (beating = false));
  };
  tick();
  // A fine tick rather than one timer per beat: vertex may change the interval, and the caller
  // stops the link by clearing this one handle.
  const t = setInterval(tick, 100);
  t.unref();
  return {
    stop: () => clearInterval(t),
    beatNow: () => {
      // A beat under way sent the old head: the next tick sends another.
      last = 0;
      tick();
    },
  };
}
