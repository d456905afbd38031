import { MachinaError } from "@machina/wire";
import type { TypeDef } from "../schema";

/** Most items one bulk request may carry (keys, criteria, update items, created records). */
export const MAX_BULK_ITEMS = 1000;

/** Which form a request takes: one entity or a list. */
export type RequestForm = "single" | "bulk";

/** The single-form fields of a request (e.g. `key`, or `key` and `alterations`) and whether any is set. */
export interface SingleFields {
  readonly names: readonly string[];
  readonly given: boolean;
}

/** The bulk-form list of a request and its field name. */
export interface BulkField {
  readonly name: string;
  readonly items: readonly unknown[];
}

/** Single or bulk, by which field is set; BAD_REQUEST naming the fields when both or neither are. */
export function chooseForm(def: TypeDef, single: SingleFields, bulk: BulkField): RequestForm {
  const one = single.names.join(" and ");
  const fields = [...single.names, bulk.name];
  if (single.given && bulk.items.length > 0) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: give either ${one} (one entity) or ${bulk.name} (a list), not both`,
      { details: { type: def.name, fields } },
    );
  }
  if (!single.given && bulk.items.length === 0) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: give ${one} (one entity) or ${bulk.name} (a list of up to ${MAX_BULK_ITEMS})`,
      { details: { type: def.name, fields } },
    );
  }
  return bulk.items.length > 0 ? "bulk" : "single";
}

/** BAD_REQUEST unless `items` is a list of at most {@link MAX_BULK_ITEMS}. */
export function checkList(def: TypeDef, name: string, items: unknown): void {
  if (!Array.isArray(items)) {
    throw new MachinaError("BAD_REQUEST", `type ${def.name}: ${name} must be a list`, {
      details: { type: def.name, field: name },
    });
  }
  if (items.length > MAX_BULK_ITEMS) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: ${name} has ${items.length} items; at most ${MAX_BULK_ITEMS} per request, so split the list`,
      { details: { type: def.name, field: name, count: items.length, max: MAX_BULK_ITEMS } },
    );
  }
}

/** Runs a check of item `index` of list `name`; a MachinaError it throws comes back naming the item. */
export function atItem<T>(def: TypeDef, name: string, index: number, check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw itemError(def, name, index, err);
  }
}

/** `err` about item `index` of list `name`, its message and details naming the item; other errors unchanged. */
export function itemError(def: TypeDef, name: string, index: number, err: unknown): unknown {
  if (!(err instanceof MachinaError)) return err;
  const item = `${name}[${index}]`;
  // Messages start "type <name>[, source <s>]: "; the item goes after that, before the problem.
  const m = /^(type [^:]*): ([\s\S]*)$/.exec(err.message);
  const message = m === null ? `type ${def.name}: ${item}: ${err.message}` : `${m[1]}: ${item}: ${m[2]}`;
  return new MachinaError(err.code, message, {
    cause: err,
    retryable: err.retryable,
    details: { ...err.details, item, list: name, index },
  });
}
