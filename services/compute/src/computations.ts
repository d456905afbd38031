import * as z from "zod";
import { field, parseDocument } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import { nameProblem } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";

/** What a computation may use. */
export interface ComputeDeps {
  client: MeshClient;
  names: MeshNames;
}

/** A registered computation: args in, rows out. */
export interface Computation {
  description: string;
  /** Its args, declared with the `field` builders of component kinds; also the source of its docs. */
  args: z.ZodType;
  /** Validates `args` (BAD_REQUEST naming `args.<field>`, before any I/O), then runs. */
  run(args: JsonObject, deps: ComputeDeps): Promise<JsonObject[]>;
}

/** What a computation declares: its args schema and a run that gets the parsed args. */
interface ComputationSpec<S extends z.ZodType> {
  description: string;
  args: S;
  run(args: z.output<S>, deps: ComputeDeps): Promise<JsonObject[]>;
}

// Args are parsed as the `args` field of the request, so a problem reads `args.key: …`, the path
// the caller wrote, in the same wording as a bad component file.
function defineComputation<S extends z.ZodType>(name: string, spec: ComputationSpec<S>): [string, Computation] {
  const problem = nameProblem(name);
  if (problem !== null) throw new Error(`computation ${problem}`);
  const request = field.object({ args: spec.args });
  const origin = `computation "${name}"`;
  return [
    name,
    {
      description: spec.description,
      args: spec.args,
      // async, so bad args reject the returned promise like a failed run instead of throwing.
      // The cast: TypeScript cannot resolve an object's output over a generic field schema.
      run: async (args, deps) =>
        spec.run((parseDocument(request, { args }, origin) as { args: z.output<S> }).args, deps),
    },
  ];
}

// A Map, not an object literal: the name comes from a subject token, and `constructor` or
// `toString` must be unknown names rather than Object.prototype members.
/** The computations this build registers (series, moving averages, top-N… come with later issues). */
export const COMPUTATIONS: ReadonlyMap<string, Computation> = new Map<string, Computation>([
  defineComputation("latest", {
    description: "Newest merged (clean) record of one entity: args {type, key: {<key fields>}}",
    args: field.object({
      // A name also keeps it a valid subject token for the data request below.
      type: field.name().describe('The entity type, e.g. "website"'),
      key: field.names(z.json()).describe('The entity key: its key fields and values, e.g. {"domain": "example.com"}'),
    }),
    async run({ type, key }, { client, names }) {
      const reply = await client.request(
        names.data("readone", "clean", type),
        "KeyRequest",
        { key: key as JsonObject },
        "RecordReply",
      );
      return [reply.record];
    },
  }),
]);

/** The computation called `name`, or NOT_FOUND listing the registered ones. */
export function computationOf(name: string): Computation {
  const c = COMPUTATIONS.get(name);
  if (c === undefined) {
    const known = [...COMPUTATIONS.keys()];
    throw new MachinaError("NOT_FOUND", `unknown computation "${name}" (registered: ${known.join(", ")})`, {
      details: { name, known },
    });
  }
  return c;
}
