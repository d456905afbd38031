import type { StatefulAggregator } from "../config/aggregator-table";
import { ForwardFillKind } from "./forward-fill";
import type { StatefulKind } from "./kind";
import { MergePartialsKind } from "./merge-partials";
import { WindowKind } from "./window";

/** A fresh kind instance (its in-memory indexes empty) for one partition of a stateful type. */
export function makeKind(agg: StatefulAggregator): StatefulKind<unknown> {
  const spec = agg.spec;
  switch (spec.aggregator) {
    default:
      throw new TypeError(`${agg.type}: no stateful kind ${String((spec as { aggregator?: unknown }).aggregator)}`);
    case "forward_fill":
      return new ForwardFillKind(spec, agg.key) as StatefulKind<unknown>;
    case "window":
      return new WindowKind(agg.type, spec, agg.key) as StatefulKind<unknown>;
    case "merge_partials":
      return new MergePartialsKind(agg.type, spec) as StatefulKind<unknown>;
  }
}
