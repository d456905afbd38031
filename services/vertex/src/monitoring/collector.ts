import type { Sample } from "./series-names";

/** One source of monitoring samples, read once per sampler tick. */
export interface Collector {
  /** Short name for logs. */
  readonly name: string;
  /** The samples of this tick, all stamped `t`; a collector that fails this tick throws. */
  collect(t: number): Promise<Sample[]>;
}
