import * as z from "zod";
import { defineKind, describeValue, field } from "@machina/config";
import type { Component, ComponentValue } from "@machina/config";
import { CACHE_KINDS, DEFAULT_MAX_BYTES } from "./cache";
import type { CacheSpec } from "./cache";
import { formatSize } from "@machina/config";
import { sizeField } from "./size-field";

// YAML reads a bare `kind: null` as null, not as the word: taken as the null kind it was meant as.
function kindField() {
  return z
    .union([field.oneOf(CACHE_KINDS), z.null().transform(() => "null" as const)], {
      error: (iss) =>
        iss.input === undefined
          ? undefined
          : `expected one of ${CACHE_KINDS.join(", ")}, got ${describeValue(iss.input)}`,
    })
    .meta({ kind: `one of ${CACHE_KINDS.map((k) => `\`${k}\``).join(", ")}` });
}

/** `config/<mode>/compute/caches/<name>.yaml`: a named cache the compute service keeps results in. */
export const CACHE_KIND = defineKind({
  kind: "compute/caches",
  doc: "A cache holds values by key in the process's memory, each stored serialized (so `max_size` counts real bytes and a value read back is a private copy). A `memory` cache drops the least recently used entries when `max_size` is reached, and with `ttl` also entries older than that; a `ttl` cache drops every entry `ttl` after it was written, and is capped by `max_size` too; a `null` cache stores nothing (every read misses), to switch caching off without touching what uses it. Sizes are binary: 1K = 1024 bytes, 512M = 512 MiB.",
  example: "kind: ttl\nmax_size: 256M\nttl: 15m\n",
  schema: field
    .object({
      kind: kindField()
        .prefault("memory")
        .describe(
          "`memory` (least recently used dropped first), `ttl` (entries expire `ttl` after written) or `null` (stores nothing); default memory",
        ),
      max_size: sizeField()
        .prefault(formatSize(DEFAULT_MAX_BYTES))
        .describe(
          `Cap on the serialized bytes held, e.g. 64K, 512M, 1.5G or 2GiB (binary units); default ${formatSize(DEFAULT_MAX_BYTES)}`,
        ),
      ttl: field
        .duration()
        .optional()
        .describe("How long an entry lives after it is written: required for `ttl`, optional for `memory` (a max age)"),
    })
    .superRefine((d, ctx) => {
      if (d.kind === "ttl" && d.ttl === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["ttl"],
          message: "is required for a ttl cache: how long an entry lives, e.g. 15m",
          input: undefined,
        });
      if (d.kind === "null" && d.ttl !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["ttl"],
          message: "is for memory and ttl caches only; a null cache stores nothing",
          input: d.ttl,
        });
    }),
});

/** The validated value of a `compute/caches` file. */
export type CacheConfig = ComponentValue<typeof CACHE_KIND>;

/** The {@link CacheSpec} of a parsed `compute/caches` component (or its value), for `createCache`. */
export function cacheSpecOf(component: Component<CacheConfig> | CacheConfig): CacheSpec {
  const { kind, max_size: maxSize, ttl } = "value" in component ? component.value : component;
  if (kind === "null") return { kind };
  return ttl === undefined ? { kind, maxSize } : { kind, maxSize, ttlMs: ttl };
}
