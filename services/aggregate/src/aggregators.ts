import { defineKind, field } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import type { RecordBatch } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** Aggregator kinds this build knows; later kinds (forward_fill, window, merge_partials) join here. */
export const AGGREGATOR_KINDS = ["passthrough"] as const;

/** An aggregator kind. */
export type AggregatorKind = (typeof AGGREGATOR_KINDS)[number];

/** Turns one incoming batch into the batches to store. */
export type Aggregator = (batch: RecordBatch) => Promise<RecordBatch[]>;

/** The aggregator declared for each entity type. */
export interface AggregatorTable {
  /** The aggregator of `type`; NOT_FOUND listing the declared types when it has none. */
  forType(type: string): Aggregator;
  /** The declared kind of every type, by type name. */
  kinds(): Map<string, AggregatorKind>;
}

const passthrough: Aggregator = async (batch) => [batch];

/** `config/<mode>/aggregate/aggregators/<type>.yaml`: how records of one entity type are aggregated. */
export const aggregatorKind = defineKind({
  kind: "aggregate/aggregators",
  doc: "One file per entity type, named after the type: every type that sources extract needs one, or its records are refused (NOT_FOUND) rather than stored unaggregated. The aggregator turns each fetched batch of the type into the batches stored.",
  example: "aggregator: passthrough\n",
  schema: field.object({
    aggregator: field
      .oneOf(AGGREGATOR_KINDS)
      .default("passthrough")
      .describe("How batches are aggregated: `passthrough` stores each batch as fetched; default passthrough"),
  }),
});

/** Validates `config/<mode>/aggregate/aggregators/<type>.yaml` docs; errors name the file and key. */
export function compileAggregators(docs: ComponentDoc[]): AggregatorTable {
  // Keyed by a subject token at run time, so a Map: `constructor` must not find Object's.
  const kinds = new Map<string, AggregatorKind>();
  for (const c of docs) {
    const { name, value } = aggregatorKind.parseDoc(c);
    kinds.set(name, value.aggregator);
  }
  return {
    // Every type needs its declaration (one aggregator per entity type): a type without one is
    // a typo or a missing file, and answering NOT_FOUND now beats a dead letter from data later.
    forType(type) {
      if (!kinds.has(type)) {
        const known = [...kinds.keys()].sort();
        throw new MachinaError(
          "NOT_FOUND",
          `no aggregator declared for type "${type}" (declared: ${known.join(", ") || "none"}); declare it in config/<mode>/aggregate/aggregators/<type>.yaml`,
          { retryable: false, details: { type, known } },
        );
      }
      return passthrough;
    },
    kinds: () => new Map(kinds),
  };
}
