import type { DataContext } from "./data-context";

// Statement texts by owner (a type definition, which a live change replaces, or the context for
// shared tables), then keyspace and name.
const texts = new WeakMap<object, Map<string, string>>();

/**
 * The text of a statement built once per owner, keyspace and name. The driver looks every
 * statement of a batch up by its text, and a string it has seen before is hashed once: building
 * the same text again for every write made each lookup hash it anew.
 */
export function cachedQuery(
  owner: object,
  ctx: Pick<DataContext, "keyspace">,
  name: string,
  build: () => string,
): string {
  let byName = texts.get(owner);
  if (byName === undefined) texts.set(owner, (byName = new Map()));
  const id = `${ctx.keyspace}\u0000${name}`;
  let text = byName.get(id);
  if (text === undefined) byName.set(id, (text = build()));
  return text;
}
