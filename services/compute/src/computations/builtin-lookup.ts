import { BUILTIN_COMPUTATIONS } from "./builtins";
import type { Computation } from "./define";
import { ComputationRegistry } from "./registry";

/** The built-in computations by name (code-defined ones join them per replica, from the config tree). */
export const COMPUTATIONS: ReadonlyMap<string, Computation> = new Map(BUILTIN_COMPUTATIONS.map((c) => [c.name, c]));

const builtins = new ComputationRegistry(BUILTIN_COMPUTATIONS);

/** The built-in computation called `name`, or NOT_FOUND listing the registered ones. */
export function computationOf(name: string): Computation {
  return builtins.get(name);
}
