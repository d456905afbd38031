/**
 * The one rule for names an operator chooses: sources, queries, entity types and their fields,
 * ledgers, query sets, triggers, aggregators, computations.
 *
 * Lower case only, by decision rather than folding: a name becomes a subject token, a KV key
 * part, a CQL table or column name (case-insensitive unless quoted) and an env var part
 * (`MACHINA_FETCH_SOURCES_<NAME>_…`, upper-cased). Allowing `Website` next to `website`, or
 * `site-stats` next to `site_stats`, would let two names meet in one table or one env var.
 * 42 characters fits Cassandra's 48-character table names after the `clean_` prefix.
 */
export const NAME_PATTERN = /^[a-z][a-z0-9_]*$/;

/** Longest name accepted. */
export const NAME_MAX_LENGTH = 42;

/** The rule in words, for error messages and docs. */
export const NAME_RULE = `a lower-case letter, then lower-case letters, digits or '_', at most ${NAME_MAX_LENGTH} characters`;

/** Why `value` is not a valid name, or null when it is one. */
export function nameProblem(value: unknown): string | null {
  if (typeof value !== "string" || value === "") return `expected a name (${NAME_RULE})`;
  if (value.length > NAME_MAX_LENGTH) return `"${value.slice(0, 20)}…" is longer than ${NAME_MAX_LENGTH} characters`;
  if (NAME_PATTERN.test(value)) return null;
  const lower = value.toLowerCase().replace(/-/g, "_");
  const hint = NAME_PATTERN.test(lower) ? ` (write "${lower}")` : "";
  return `"${value}" is not a name: use ${NAME_RULE}${hint}`;
}

/** True when `value` follows the name rule. */
export function isName(value: unknown): value is string {
  return nameProblem(value) === null;
}
