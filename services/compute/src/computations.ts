import type { JsonObject } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
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
  run(args: JsonObject, deps: ComputeDeps): Promise<JsonObject[]>;
}

function requireString(args: JsonObject, field: string, hint: string): string {
  const v = args[field];
  if (typeof v !== "string" || v === "") {
    throw new MachinaError("BAD_REQUEST", `missing args.${field}: ${hint}`, { details: { field } });
  }
  return v;
}

function requireObject(args: JsonObject, field: string, hint: string): JsonObject {
  const v = args[field];
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new MachinaError("BAD_REQUEST", `missing args.${field}: ${hint}`, { details: { field } });
  }
  return v;
}

// A Map, not an object literal: the name comes from a subject token, and `constructor` or
// `toString` must be unknown names rather than Object.prototype members.
/** The computations this build registers (series, moving averages, top-N… come with later issues). */
export const COMPUTATIONS: ReadonlyMap<string, Computation> = new Map<string, Computation>([
  ["latest", {
    description: "Newest merged (clean) record of one entity: args {type, key: {<key fields>}}",
    async run(args, { client, names }) {
      const type = requireString(args, "type", 'the entity type, e.g. "website"');
      const key = requireObject(args, "key", 'the entity key, e.g. {"domain": "example.com"}');
      if (!/^[A-Za-z0-9_-]+$/.test(type)) {
        // It becomes a subject token; the subject builder would throw a TypeError (a 500) instead.
        throw new MachinaError("BAD_REQUEST", `args.type "${type}" is not an entity type name (letters, digits, '_' or '-')`, { details: { field: "type" } });
      }
      const reply = await client.request(names.data("readone", "clean", type), "KeyRequest", { key }, "RecordReply");
      return [reply.record];
    },
  }],
]);

/** The computation called `name`, or NOT_FOUND listing the registered ones. */
export function computationOf(name: string): Computation {
  const c = COMPUTATIONS.get(name);
  if (c === undefined) {
    const known = [...COMPUTATIONS.keys()];
    throw new MachinaError("NOT_FOUND", `unknown computation "${name}" (registered: ${known.join(", ")})`, { details: { name, known } });
  }
  return c;
}
