import type { Computation } from "./define";
import { distinct } from "./distinct";
import { growth } from "./growth";
import { latest } from "./latest";
import { matching } from "./matching";
import { moving_average } from "./moving-average";
import { series } from "./series";
import { stats } from "./stats";
import { top_n } from "./top-n";

/** The computations every compute replica serves, in the order their names are listed. */
export const BUILTIN_COMPUTATIONS: readonly Computation[] = [
  latest,
  distinct,
  series,
  moving_average,
  growth,
  top_n,
  stats,
  matching,
];
