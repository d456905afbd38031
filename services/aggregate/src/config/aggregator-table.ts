import { componentError, formatDuration } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import { MachinaError } from "@machina/wire";
import { MAX_WINDOWS_PER_RECORD, aggregatorKind } from "./aggregator-kind";
import type { AggregatorKind, AggregatorSpec, StatefulSpec } from "./aggregator-kind";

/** The aggregator declared for one entity type. */
export type TypeAggregator =
  | { type: string; origin: string; kind: "passthrough"; spec: Extract<AggregatorSpec, { aggregator: "passthrough" }> }
  | {
      type: string;
      origin: string;
      kind: Exclude<AggregatorKind, "passthrough">;
      spec: StatefulSpec;
      /** Key fields, in order. */
      key: string[];
      partitions: number;
    };

/** A stateful type's aggregator. */
export type StatefulAggregator = Extract<TypeAggregator, { key: string[] }>;

/** The aggregator declared for each entity type. */
export interface AggregatorTable {
  /** The aggregator of `type`; NOT_FOUND listing the declared types when it has none. */
  forType(type: string): TypeAggregator;
  /** The declared kind of every type, by type name. */
  kinds(): Map<string, AggregatorKind>;
  /** Every stateful type's aggregator, by type name. */
  stateful(): StatefulAggregator[];
}

/**
 * Validates `config/<mode>/aggregate/aggregators/<type>.yaml` docs; errors name the file and key.
 * `dataTypes` are the `data/types` docs, whose `key` a stateful aggregator uses when it names none.
 */
export function compileAggregators(docs: ComponentDoc[], dataTypes: ComponentDoc[] = []): AggregatorTable {
  const dataKeys = new Map<string, string[]>();
  for (const d of dataTypes) {
    const k = d.doc.key;
    const list = typeof k === "string" ? [k] : Array.isArray(k) ? k.filter((x) => typeof x === "string") : [];
    if (list.length > 0) dataKeys.set(d.name, list as string[]);
  }
  // Keyed by a subject token at run time, so a Map: `constructor` must not find Object's.
  const table = new Map<string, TypeAggregator>();
  for (const c of docs) {
    // A file without `aggregator` (or an empty one) is passthrough, as before the other kinds.
    const doc = Object.hasOwn(c.doc, "aggregator") ? c : { ...c, doc: { aggregator: "passthrough", ...c.doc } };
    const { name, origin, value } = aggregatorKind.parseDoc(doc);
    table.set(name, compileOne(name, origin, value, dataKeys.get(name)));
  }
  return {
    // Every type needs its declaration (one aggregator per entity type): a type without one is
    // a typo or a missing file, and answering NOT_FOUND now beats a dead letter from data later.
    forType(type) {
      const a = table.get(type);
      if (a === undefined) {
        const known = [...table.keys()].sort();
        throw new MachinaError(
          "NOT_FOUND",
          `no aggregator declared for type "${type}" (declared: ${known.join(", ") || "none"}); declare it in config/<mode>/aggregate/aggregators/<type>.yaml`,
          { retryable: false, details: { type, known } },
        );
      }
      return a;
    },
    kinds: () => new Map([...table].map(([t, a]) => [t, a.kind])),
    stateful: () => [...table.values()].filter((a): a is StatefulAggregator => a.kind !== "passthrough"),
  };
}

function compileOne(type: string, origin: string, spec: AggregatorSpec, dataKey?: string[]): TypeAggregator {
  if (spec.aggregator === "passthrough") return { type, origin, kind: "passthrough", spec };
  const key = spec.key === undefined ? dataKey : typeof spec.key === "string" ? [spec.key] : spec.key;
  if (key === undefined)
    throw componentError(
      origin,
      "key",
      `a ${spec.aggregator} aggregator keeps state per entity, so it needs the key: name the key field(s) here, or declare the type in config/<mode>/data/types/${type}.yaml with its key`,
    );
  if (new Set(key).size !== key.length) throw componentError(origin, "key", "lists a field twice");
  if (spec.aggregator === "window") {
    const hop = spec.hop ?? spec.size;
    if (hop > spec.size)
      throw componentError(
        origin,
        "hop",
        `${formatDuration(hop)} is longer than size ${formatDuration(spec.size)}, which would leave gaps no window covers; make hop at most size`,
      );
    if (spec.size / hop > MAX_WINDOWS_PER_RECORD)
      throw componentError(
        origin,
        "hop",
        `size / hop is ${Math.ceil(spec.size / hop)}: every record would fall in that many windows; at most ${MAX_WINDOWS_PER_RECORD}`,
      );
    if (spec.keep_closed !== undefined && spec.late !== "correct")
      throw componentError(origin, "keep_closed", "only applies with late: correct (drop keeps no closed window)");
    for (const f of Object.keys(spec.fields))
      if (key.includes(f))
        throw componentError(origin, `fields.${f}`, "is a key field: every output record carries the key as it is");
    if (spec.time_field !== undefined && key.includes(spec.time_field))
      throw componentError(origin, "time_field", "is a key field; the event time must be another field");
  }
  return { type, origin, kind: spec.aggregator, spec, key, partitions: spec.partitions };
}
