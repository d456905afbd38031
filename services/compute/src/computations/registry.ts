import { MachinaError } from "@machina/wire";
import type { Computation } from "./define";

/**
 * The computations one compute replica serves, by name: the built-ins and the code-defined ones
 * from the config tree. A Map, not an object literal: the name comes from a subject token, and
 * `constructor` or `toString` must be unknown names rather than Object.prototype members.
 */
export class ComputationRegistry {
  private readonly byName = new Map<string, Computation>();

  constructor(computations: readonly Computation[]) {
    for (const c of computations) {
      const taken = this.byName.get(c.name);
      if (taken !== undefined)
        throw new MachinaError(
          "BAD_REQUEST",
          `${c.origin}: computation "${c.name}" is already registered by ${taken.origin}; give it another name`,
          { details: { name: c.name } },
        );
      this.byName.set(c.name, c);
    }
  }

  /** The computation called `name`, or NOT_FOUND listing the registered ones. */
  get(name: string): Computation {
    const c = this.byName.get(name);
    if (c === undefined) {
      const known = this.names();
      throw new MachinaError("NOT_FOUND", `unknown computation "${name}" (registered: ${known.join(", ")})`, {
        details: { name, known },
      });
    }
    return c;
  }

  /** Whether `name` is registered. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The registered names, in registration order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Every registered computation. */
  all(): Computation[] {
    return [...this.byName.values()];
  }
}
