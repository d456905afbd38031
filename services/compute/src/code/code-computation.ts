// The contract between the compute service and a computation module in the config tree
// (config/<mode>/compute/computations/<name>.ts). The file name is the computation's name; the
// module reads data only through ctx, so its reads are recorded and its results cached and
// invalidated like a built-in's.
import type * as z from "zod";
import type { field } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import type { ComputeDeps, ComputeResult, Paging } from "../computations/define";

/** The field builders a module declares its args with (the loader passes @machina/config's `field`). */
export type FieldBuilders = typeof field;

/**
 * What a code-defined computation's default export implements; `A` is its parsed args. Write
 * `export default { … } satisfies CodeComputation<MyArgs>` importing only this type.
 */
export interface CodeComputation<A = JsonObject> {
  /** One paragraph for compute's listing and docs: what it answers and its args. */
  description: string;
  /**
   * Its args schema, built with the `field` builders handed in (so the module needs no runtime
   * import); args are validated before run, and a bad one reads `args.<field>: …`.
   */
  args(f: FieldBuilders): z.ZodType<A>;
  /** False when its results must never be cached (e.g. they depend on the clock); default true. */
  cacheable?: boolean;
  /**
   * Answers rows, or rows and the next page's token when it pages (`paging.page` is the previous
   * answer's next, "" for the first page; `paging.limit` 0 means its default). Reads data through
   * `ctx.data` and other computations through `ctx.call`.
   */
  run(args: A, ctx: ComputeDeps, paging: Paging): Promise<JsonObject[] | ComputeResult>;
}
