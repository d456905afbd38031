import type { ComponentSet, ServiceContext } from "@machina/runtime";
import { MachinaError, isMachinaError } from "@machina/wire";
import type { DataLayer } from "./crud";
import { compileTypeDef } from "./schema";
import type { TypeDef } from "./schema";

type Logger = ServiceContext<unknown>["log"];

// A second replica applying the same head may add a column between this one's plan and its DDL
// (its ALTER then fails); planning again finds the column there.
const APPLY_ATTEMPTS = 3;

/** The data types of a component set, compiled as setup compiles them. */
export function compileTypes(set: ComponentSet): TypeDef[] {
  return set.docs("data/types").map((d) => compileTypeDef({ name: d.name, ...d.doc }, d.origins.join(" + ")));
}

/**
 * Refuses a proposed set whose types this keyspace cannot take in place (`config.validate.data`,
 * before a patch is stored): BAD_REQUEST naming each type and what breaks (a changed key or field
 * type, a removed field), so the patch is never stored rather than stored and left unapplied.
 */
export async function checkLiveTypes(data: DataLayer, set: ComponentSet): Promise<void> {
  try {
    await data.checkTypes(compileTypes(set));
  } catch (err) {
    if (!isMachinaError(err) || err.code !== "CONFLICT") throw err;
    const types = (err.details?.types ?? []) as { origin: string; problems: string[] }[];
    const lines = types.map((t) => `${t.origin}: ${t.problems.join("; ")}`);
    throw new MachinaError(
      "BAD_REQUEST",
      `${lines.join(" | ")}: a type's key and field types cannot change, nor a field be removed, in place ` +
        "(live or at a restart); declare a new type (e.g. <name>_v2) instead. New types, new fields, merge " +
        "policies, dump_ttl and clean_window apply live",
      { retryable: false, details: { origin: types[0]?.origin ?? "data/types", field: "", types } },
    );
  }
}

/**
 * Takes a head's types live: creates the tables of new types and the columns of new fields as
 * start-up does, then serves exactly those types. A breaking change (CONFLICT) changes nothing,
 * so the replica keeps its previous head. Returns the types now served.
 */
export async function applyLiveTypes(data: DataLayer, set: ComponentSet, log: Logger): Promise<TypeDef[]> {
  const types = compileTypes(set);
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await data.registerTypes(types);
      log.info(
        {
          head: set.head,
          types: types.map((t) => t.name),
          applied: res.applied.map((a) => ({ type: a.type, version: a.version })),
        },
        "data types reloaded",
      );
      return types;
    } catch (err) {
      if ((isMachinaError(err) && err.code === "CONFLICT") || attempt === APPLY_ATTEMPTS) throw err;
      log.warn({ err, attempt }, "data types not applied yet; planning again");
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}
