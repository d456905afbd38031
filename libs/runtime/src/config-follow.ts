import type { Kvm } from "@nats-io/kv";
import { isPlainObject } from "@machina/config";
import type { JsonValue } from "@machina/protos";
import type { ConfigSourceOptions } from "@machina/config";
import { ConfigChain, canonicalHash, followChain, withEnv } from "@machina/config-chain";
import type { ChainFollower, ChainState, ConfigTree, DeclaredKind, EnvSetting } from "@machina/config-chain";
import type { Logger } from "@machina/log";
import type { MeshNames, ServiceName } from "@machina/subjects";
import { MachinaError, isMachinaError } from "@machina/wire";
import { ComponentSet } from "./component-set";
import { defineEndpoint } from "./endpoint";
import type { EndpointDef } from "./endpoint";

/** The component kinds a service owns, and how it checks a proposed set of them. */
export interface ServiceComponents {
  /** `<service>/<kind>` of every kind it owns, e.g. `fetch/sources`. */
  kinds: readonly string[];
  /** Kinds of other services its compilation also reads (aggregate reads `data/types`). */
  reads?: readonly string[];
  /**
   * Compiles the set's components as setup would, without starting anything; throws BAD_REQUEST
   * `<service>/<kind>/<name>: <field path>: <problem>` for the first that fails. `files`: where
   * files a component names (a code module) are found.
   */
  validate(set: ComponentSet, files: ConfigSourceOptions): void | Promise<void>;
  /**
   * The declared kinds (`defineKind`) of `kinds`, so `config.defaults.<service>` can fill a
   * component with its schema defaults for `config.explain`. Default none: explain then answers
   * `unset` for a key only a schema default sets.
   */
  schemas?: readonly DeclaredKind[];
}

/**
 * A check of a proposed set against what this replica runs, after {@link ServiceComponents.validate}:
 * throws BAD_REQUEST for a change live apply cannot make (a data type's changed key, say).
 */
export type RunningCheck = (set: ComponentSet) => void | Promise<void>;

/** Options of {@link LiveConfig.open}. */
export interface LiveConfigOptions {
  service: ServiceName;
  kvm: Kvm;
  bucket: string;
  replicas: number;
  configSource: ConfigSourceOptions;
  log: Logger;
}

/** One service's view of the config chain: where it started and how it follows. */
export class LiveConfig {
  private constructor(
    private readonly service: ServiceName,
    private readonly chain: ConfigChain | null,
    /** The state setup runs; null without a chain. */
    readonly start: ChainState | null,
    private readonly configSource: ConfigSourceOptions,
  ) {}

  /**
   * Opens the chain and reads its head. A chain that cannot be read (another service's file
   * does not parse, say) leaves the service on its files, following nothing: said in the log,
   * and its heartbeat reports no head.
   */
  static async open(opts: LiveConfigOptions): Promise<LiveConfig> {
    try {
      const chain = await ConfigChain.open({
        ...opts.configSource,
        kvm: opts.kvm,
        bucket: opts.bucket,
        replicas: opts.replicas,
      });
      return new LiveConfig(opts.service, chain, await chain.current(), opts.configSource);
    } catch (err) {
      opts.log.warn({ err }, "config chain not readable; running the files without live patches");
      return new LiveConfig(opts.service, null, null, opts.configSource);
    }
  }

  /** The head setup runs ("" without a chain). */
  get head(): string {
    return this.start?.head ?? "";
  }

  /** The components setup compiles: the files' own when nothing is patched, else the chain's tree at the head. */
  components(): ComponentSet {
    const s = this.start;
    if (s === null || s.head === s.root)
      return ComponentSet.fromFiles(this.head, s?.effective ?? {}, this.configSource, this.chain?.files.origins);
    return ComponentSet.fromTree(s.head, s.effective);
  }

  /**
   * `config.validate.<service>`: checks a proposed tree's part this service owns (with this
   * process's env over it), then `running` checks it against what this replica runs.
   */
  validateEndpoint(
    names: MeshNames,
    components: ServiceComponents | undefined,
    node: string,
    running?: RunningCheck,
  ): EndpointDef {
    const service = this.service;
    const env: readonly EnvSetting[] = this.chain?.files.env ?? [];
    const files = this.configSource;
    return defineEndpoint({
      name: "config-validate",
      subject: names.config.validate(service),
      request: "ConfigDocument",
      reply: "Ack",
      description: `Checks a proposed config tree's ${service} part by compiling it as setup would (BAD_REQUEST naming the field)`,
      async handler(req) {
        if (!isPlainObject(req.value))
          throw new MachinaError("BAD_REQUEST", "value: the proposed tree must be a mapping of services", {
            retryable: false,
            details: { field: "value" },
          });
        const tree = withEnv(req.value as ConfigTree, env);
        await checkPart(service, tree, components, req.head, files, running);
        return { ok: true, id: node };
      },
    });
  }

  /**
   * `config.defaults.<service>`: the component at `path` (`/<service>/<kind>/<name>`, its
   * document in `value`) with this service's schema defaults filled in; null when the kind
   * declares no schema here or the document does not compile.
   */
  defaultsEndpoint(names: MeshNames, components: ServiceComponents | undefined): EndpointDef {
    const service = this.service;
    const schemas = new Map((components?.schemas ?? []).map((k) => [k.kind, k]));
    return defineEndpoint({
      name: "config-defaults",
      subject: names.config.defaults(service),
      request: "ConfigDocument",
      reply: "ConfigDocument",
      description: `A ${service} component with its schema defaults filled in, for config.explain`,
      async handler(req) {
        const [owner, kindName, name, ...rest] = req.path.split("/").slice(1);
        if (owner !== service || kindName === undefined || name === undefined || rest.length > 0)
          throw new MachinaError("BAD_REQUEST", `path: expected /${service}/<kind>/<name>, got "${req.path}"`, {
            retryable: false,
            details: { field: "path" },
          });
        const kind = schemas.get(`${service}/${kindName}`);
        let filled: unknown = null;
        if (kind !== undefined && isPlainObject(req.value)) {
          try {
            const doc = req.value as Record<string, unknown>;
            filled = kind.parseDoc({ name, origins: [req.path.slice(1)], doc }).value;
          } catch {
            // A component that does not compile has no defaults to tell.
          }
        }
        return { head: req.head, root: "", path: req.path, value: toJson(filled), length: 0 };
      },
    });
  }

  /**
   * Follows the chain from the head setup ran: every later head whose components this service
   * reads changed goes to `apply`; `onHead` hears each head it runs from then on. A head whose
   * apply throws is logged once and skipped: the previous config (and head) stays in force.
   */
  async follow(
    components: ServiceComponents | undefined,
    apply: ((set: ComponentSet) => Promise<void>) | undefined,
    onHead: (head: string) => void,
    log: Logger,
  ): Promise<ChainFollower | null> {
    const chain = this.chain;
    const start = this.start;
    if (chain === null || start === null) return null;
    const kinds = [...(components?.kinds ?? [`${this.service}/`]), ...(components?.reads ?? [])];
    // A hash, not the text: a big ledger's would be kept for the process's life.
    const mine = (tree: ConfigTree) => canonicalHash(kinds.map((k) => partOf(tree, k)));
    let applied = mine(start.effective);
    return followChain(
      chain,
      async (s) => {
        if (s.head === start.head) return;
        const next = mine(s.effective);
        if (next !== applied) {
          if (apply === undefined)
            throw new MachinaError(
              "UNAVAILABLE",
              `${this.service} cannot take component changes live; restart it to run head ${s.head}`,
              { retryable: false },
            );
          await apply(ComponentSet.fromTree(s.head, s.effective));
          applied = next;
        }
        onHead(s.head);
      },
      {
        onError: (err, s) =>
          log.error({ err, head: s.head }, "config head not applied; this instance keeps running the previous one"),
      },
    );
  }
}

// `<service>/<kind>` or `<service>/` (the whole service).
function partOf(tree: ConfigTree, kind: string): unknown {
  const [service, kindName] = kind.split("/");
  return kindName === "" ? (tree[service] ?? {}) : (tree[service]?.[kindName] ?? {});
}

async function checkPart(
  service: ServiceName,
  tree: ConfigTree,
  components: ServiceComponents | undefined,
  head: string,
  files: ConfigSourceOptions,
  running: RunningCheck | undefined,
): Promise<void> {
  const part = tree[service] ?? {};
  if (!isPlainObject(part))
    throw new MachinaError("BAD_REQUEST", `${service}: must be a mapping of component kinds`, {
      retryable: false,
      details: { origin: service, field: "" },
    });
  const known = components?.kinds ?? [];
  for (const kind of Object.keys(part)) {
    if (known.includes(`${service}/${kind}`)) continue;
    throw new MachinaError(
      "BAD_REQUEST",
      `${service}/${kind}: ${service} has no component kind "${kind}"; its kinds: ${known.join(", ") || "none"}`,
      { retryable: false, details: { origin: `${service}/${kind}`, field: "" } },
    );
  }
  if (components === undefined) return;
  try {
    const set = ComponentSet.fromTree(head, tree);
    await components.validate(set, files);
    await running?.(set);
  } catch (err) {
    if (isMachinaError(err)) throw err;
    // A compiler that throws plain errors still refuses the patch, not the service.
    throw new MachinaError("BAD_REQUEST", `${service}: ${(err as Error).message}`, { retryable: false });
  }
}

// Through JSON, so what a kind's parse made (a Date, an undefined) goes out as the wire can carry it.
function toJson(v: unknown): JsonValue {
  return v === null || v === undefined ? null : (JSON.parse(JSON.stringify(v)) as JsonValue);
}
