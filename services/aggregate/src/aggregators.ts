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
  forType(type: string): Aggregator;
  kinds(): Record<string, AggregatorKind>;
}

const passthrough: Aggregator = async (batch) => [batch];

/** Validates `config/<mode>/aggregate/aggregators/<type>.yaml` docs; errors name the file and key. */
export function compileAggregators(docs: ComponentDoc[]): AggregatorTable {
  const kinds: Record<string, AggregatorKind> = {};
  for (const c of docs) {
    const origin = c.origins.join(" + ");
    for (const key of Object.keys(c.doc)) {
      if (key !== "aggregator") {
        throw new MachinaError("BAD_REQUEST", `${origin}: ${key}: unknown key (expected: aggregator)`);
      }
    }
    const kind = c.doc.aggregator ?? "passthrough";
    if (typeof kind !== "string" || !(AGGREGATOR_KINDS as readonly string[]).includes(kind)) {
      throw new MachinaError("BAD_REQUEST", `${origin}: aggregator: expected one of ${AGGREGATOR_KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
    }
    kinds[c.name] = kind as AggregatorKind;
  }
  return {
    // Types without a declaration pass through: the data layer decides whether it knows them.
    forType: () => passthrough,
    kinds: () => ({ ...kinds }),
  };
}
