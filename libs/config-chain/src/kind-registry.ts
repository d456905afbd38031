import { componentError, isPlainObject } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import { SERVICES } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { canonicalJson } from "./canonical-json";
import type { ConfigTree } from "./config-patch";

/** Validates one component of a kind as a patch would leave it. */
export interface KindValidator {
  /** `<service>/<kind>`, e.g. `fetch/sources`. */
  readonly kind: string;
  /**
   * Returns the component's value with schema defaults filled in, or throws BAD_REQUEST naming
   * `origin` and the field. `tree` is the whole patched tree, for checks across components.
   */
  validate(name: string, doc: unknown, origin: string, tree: ConfigTree): unknown;
}

/**
 * Checks one service's part of a proposed tree as a whole, usually by asking the service itself
 * (`config.validate.<service>`): resolves when it takes the change, throws BAD_REQUEST (its own
 * message) when it refuses, UNAVAILABLE when it cannot be asked.
 */
export type ServiceValidator = (service: string, tree: ConfigTree) => Promise<void>;

/**
 * Fills one component of a service's kind with that service's schema defaults, usually by asking
 * the service (`config.defaults.<service>`): resolves to the filled component, undefined when it
 * has none to tell; throws UNAVAILABLE when it cannot be asked.
 */
export type ServiceDefaults = (service: string, kind: string, name: string, doc: unknown) => Promise<unknown>;

/** What a registry needs of a kind declared with `defineKind` (every `ComponentKind` is one). */
export interface DeclaredKind {
  readonly kind: string;
  parseDoc(doc: ComponentDoc): { readonly value: unknown };
}

/** What the registry does with a change to a kind nobody registered. */
export type UnknownKindPolicy = "refuse" | "accept";

/**
 * The validators a chain checks patches with. Component schemas are declared in the services
 * (`componentKinds` of each), so whoever serves `config.patch` registers the kinds it can
 * reach; a service may add its own cross-component checks as extra validators of a kind.
 */
export class KindRegistry {
  private readonly byKind = new Map<string, KindValidator[]>();
  private readonly byService = new Map<string, ServiceValidator>();
  private readonly defaultsByService = new Map<string, ServiceDefaults>();

  /** `unknownKinds`: a change to an unregistered kind is refused (default) or accepted unchecked. */
  constructor(private readonly unknownKinds: UnknownKindPolicy = "refuse") {}

  /** Registers declared component kinds (`defineKind`) or validators; returns the registry. */
  register(...kinds: readonly (DeclaredKind | KindValidator)[]): this {
    for (const k of kinds) {
      const v = "validate" in k ? k : fromComponentKind(k);
      const list = this.byKind.get(v.kind) ?? [];
      list.push(v);
      this.byKind.set(v.kind, list);
    }
    return this;
  }

  /**
   * Hands every kind of `services` to `validate` (see {@link checkServices}): their owners know
   * their kinds, so a change to one of them needs no local validator. Returns the registry.
   */
  registerServices(services: readonly string[], validate: ServiceValidator, defaults?: ServiceDefaults): this {
    for (const s of services) {
      this.byService.set(s, validate);
      if (defaults !== undefined) this.defaultsByService.set(s, defaults);
    }
    return this;
  }

  /**
   * The component with schema defaults filled in: by a local validator of its kind when one is
   * registered ({@link withDefaults}), else by its service's {@link ServiceDefaults}; undefined
   * when neither can tell.
   */
  async ownerDefaults(kind: string, name: string, doc: unknown, tree: ConfigTree): Promise<unknown> {
    if (this.byKind.has(kind)) return this.withDefaults(kind, name, doc, tree);
    const service = kind.split("/")[0];
    return this.defaultsByService.get(service)?.(service, kind, name, doc);
  }

  /**
   * Awaits the service validator of every service whose part differs between `before` and
   * `after` (one call per service, in parallel); the first refusal, in service order, is thrown.
   */
  async checkServices(before: ConfigTree, after: ConfigTree): Promise<void> {
    const changed = [...this.byService.keys()]
      .filter((s) => canonicalJson(before[s] ?? {}) !== canonicalJson(after[s] ?? {}))
      .sort();
    const outcomes = await Promise.allSettled(
      changed.map((s) => (this.byService.get(s) as ServiceValidator)(s, after)),
    );
    for (const o of outcomes) if (o.status === "rejected") throw o.reason;
  }

  /** The registered kinds, sorted. */
  kinds(): string[] {
    return [...this.byKind.keys()].sort();
  }

  /** The component with schema defaults filled in by the kind's first validator; undefined when unregistered or invalid. */
  withDefaults(kind: string, name: string, doc: unknown, tree: ConfigTree): unknown {
    const first = this.byKind.get(kind)?.[0];
    if (first === undefined) return undefined;
    try {
      return first.validate(name, doc, `${kind}/${name}`, tree);
    } catch {
      return undefined;
    }
  }

  /**
   * Validates every component `after` adds or changes against `before`; throws BAD_REQUEST
   * `<service>/<kind>/<name>: <field>: <problem>` for the first one that fails.
   */
  check(before: ConfigTree, after: ConfigTree): void {
    if (!isPlainObject(after)) throw shapeError("", "the document must be a mapping of services");
    for (const [service, kinds] of Object.entries(after)) {
      if (!(SERVICES as readonly string[]).includes(service))
        throw shapeError(service, `unknown service "${service}"; expected one of ${SERVICES.join(", ")}`);
      if (!isPlainObject(kinds)) throw shapeError(service, "must be a mapping of component kinds");
      for (const [kindName, components] of Object.entries(kinds)) {
        const kind = `${service}/${kindName}`;
        if (!isPlainObject(components)) throw shapeError(kind, "must be a mapping of component names");
        const was = before[service]?.[kindName] ?? {};
        for (const [name, doc] of Object.entries(components)) {
          if (Object.hasOwn(was, name) && canonicalJson(was[name]) === canonicalJson(doc)) continue;
          this.checkOne(kind, name, doc, after);
        }
      }
    }
  }

  private checkOne(kind: string, name: string, doc: unknown, tree: ConfigTree): void {
    const origin = `${kind}/${name}`;
    const validators = this.byKind.get(kind);
    if (validators === undefined) {
      // Its service's own validator judges it (checkServices).
      if (this.byService.has(kind.split("/")[0])) return;
      if (this.unknownKinds === "accept") return;
      const known = this.kinds();
      throw shapeError(
        kind,
        `no validator is registered for kind ${kind}, so a patch cannot change it; checked kinds: ${known.join(", ") || "none"}`,
      );
    }
    if (!isPlainObject(doc)) throw componentError(origin, "", "a component must be a mapping of keys to values");
    for (const v of validators) v.validate(name, doc, origin, tree);
  }
}

function fromComponentKind(k: DeclaredKind): KindValidator {
  return {
    kind: k.kind,
    validate: (name, doc, origin) => k.parseDoc({ name, origins: [origin], doc: doc as Record<string, unknown> }).value,
  };
}

function shapeError(where: string, message: string): MachinaError {
  return new MachinaError("BAD_REQUEST", where === "" ? message : `${where}: ${message}`, {
    retryable: false,
    details: { origin: where, field: "" },
  });
}
