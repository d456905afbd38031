import type * as z from "zod";
import { field, parseDocument } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { nameProblem } from "@machina/subjects";
import type { DataReads } from "../reads/data-reads";

/** What a computation may use. */
export interface ComputeDeps {
  /** Clean data through the data service; every read is recorded for cache invalidation. */
  data: DataReads;
  /** Runs another registered computation (through the cache); its reads count as this run's. */
  call(name: string, args: JsonObject, paging?: Paging): Promise<ComputeResult>;
}

/**
 * The request's paging, as compute.get carries it: `limit` rows per page (0: the computation's
 * default) and `page`, the `next` of the previous answer ("" for the first page). Computations
 * that do not page ignore it.
 */
export interface Paging {
  limit: number;
  page: string;
}

/** What a run answers: its rows and, for a paged computation, the next page's token ("" on the last). */
export interface ComputeResult {
  rows: JsonObject[];
  next: string;
}

/** A registered computation: args in, rows out. */
export interface Computation {
  readonly name: string;
  readonly description: string;
  /** Its args, declared with the `field` builders of component kinds; also the source of its docs. */
  readonly args: z.ZodType;
  /** Where it comes from: "built-in" or the module file of a code-defined computation. */
  readonly origin: string;
  /** False when its results must never be cached (default true). */
  readonly cacheable: boolean;
  /**
   * Validates `args` (BAD_REQUEST naming `args.<field>`, before any I/O) and, for a paged
   * computation, `paging` (BAD_REQUEST naming `limit` or `page`), then runs.
   */
  run(args: JsonObject, deps: ComputeDeps, paging?: Paging): Promise<ComputeResult>;
}

/**
 * What a computation declares: its args schema and a run that gets the parsed args and the
 * request's paging; it answers rows, or rows and the next page's token when it pages.
 */
export interface ComputationSpec<S extends z.ZodType> {
  description: string;
  args: S;
  /** Default true. */
  cacheable?: boolean;
  run(args: z.output<S>, deps: ComputeDeps, paging: Paging): Promise<JsonObject[] | ComputeResult>;
}

/**
 * Makes a computation from its spec. Args are parsed as the `args` field of the request, so a
 * problem reads `args.key: …`, the path the caller wrote, in the same wording as a bad component
 * file; `origin` names the module for code-defined ones.
 */
export function defineComputation<S extends z.ZodType>(
  name: string,
  spec: ComputationSpec<S>,
  origin = "built-in",
): Computation {
  const problem = nameProblem(name);
  if (problem !== null) throw new Error(`computation ${problem}`);
  const request = field.object({ args: spec.args });
  const where = `computation "${name}"`;
  return {
    name,
    description: spec.description,
    args: spec.args,
    origin,
    cacheable: spec.cacheable ?? true,
    // async, so bad args reject the returned promise like a failed run instead of throwing.
    // The cast: TypeScript cannot resolve an object's output over a generic field schema.
    run: async (args, deps, paging = { limit: 0, page: "" }) => {
      const out = await spec.run((parseDocument(request, { args }, where) as { args: z.output<S> }).args, deps, paging);
      return Array.isArray(out) ? { rows: out, next: "" } : out;
    },
  };
}
