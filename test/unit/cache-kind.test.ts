// Covers the compute/caches component kind: YAML files read through loadComponents into a
// CacheSpec and a working cache, defaults, env overrides, and refusals naming file and field.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadComponents } from "@machina/config";
import { CACHE_KIND, cacheSpecOf, createCache } from "@machina/cache";
import { badRequest, componentDoc } from "../support/component-docs";

const ORIGIN = "config/default/compute/caches/results.yaml";
const MiB = 1024 * 1024;

/** The cache spec of one `compute/caches/results.yaml` document. */
const specOf = (doc: Record<string, unknown>) =>
  cacheSpecOf(CACHE_KIND.parseDoc(componentDoc("results", doc, [ORIGIN])));

/** The BAD_REQUEST message for document `doc`. */
const refusal = (doc: Record<string, unknown>) => badRequest(() => specOf(doc));

describe("compute/caches kind", () => {
  const dir = mkdtempSync(join(tmpdir(), "machina-cache-kind-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    mkdirSync(join(dir, "default", "compute", "caches"), { recursive: true });
    writeFileSync(join(dir, "default", "compute", "caches", name), text);
  };

  it("lives under compute/caches", () => {
    assert.equal(CACHE_KIND.kind, "compute/caches");
  });

  it("reads YAML files into cache specs that make working caches", () => {
    write("results.yaml", "kind: ttl\nmax_size: 256M\nttl: 15m\n");
    write("plain.yaml", "{}\n");
    // Bare, YAML reads it as null rather than the word; both spellings mean the null kind.
    write("off.yaml", "kind: null\n");
    write("off_quoted.yaml", 'kind: "null"\n');
    const docs = loadComponents(CACHE_KIND.kind, { configDir: dir, mode: "default", env: {} });
    const specs = new Map(docs.map((d) => [d.name, cacheSpecOf(CACHE_KIND.parseDoc(d))]));
    const cache = createCache(specs.get("results")!);
    assert.deepEqual([cache.kind, cache.maxBytes], ["ttl", 256 * MiB]);
    assert.equal(createCache(specs.get("off")!).set("k", 1), false);
    assert.deepEqual(Object.fromEntries(specs), {
      off: { kind: "null" },
      off_quoted: { kind: "null" },
      plain: { kind: "memory", maxSize: 512 * MiB },
      results: { kind: "ttl", maxSize: 256 * MiB, ttlMs: 15 * 60_000 },
    });
  });

  it("takes an env override of max_size, as text or as a bare number of bytes", () => {
    write("envy.yaml", "max_size: 1G\n");
    const load = (value: string) =>
      loadComponents(CACHE_KIND.kind, {
        configDir: dir,
        mode: "default",
        env: { MACHINA_COMPUTE_CACHES_ENVY_MAX_SIZE: value },
      })
        .filter((d) => d.name === "envy")
        .map((d) => cacheSpecOf(CACHE_KIND.parseDoc(d)))[0];
    assert.deepEqual(load("2GiB"), { kind: "memory", maxSize: 2 * 1024 * MiB });
    assert.deepEqual(load("4096"), { kind: "memory", maxSize: 4096 });
  });

  it("accepts a memory cache with a max age, every size form, and the value alone", () => {
    assert.deepEqual(specOf({ kind: "memory", max_size: "1.5G", ttl: "1h" }), {
      kind: "memory",
      maxSize: 1536 * MiB,
      ttlMs: 3_600_000,
    });
    for (const [text, bytes] of [
      ["64K", 64 * 1024],
      ["512MB", 512 * MiB],
      ["1024M", 1024 * MiB],
      [100, 100],
    ] as const)
      assert.equal(specOf({ max_size: text }).maxSize, bytes, String(text));
    const parsed = CACHE_KIND.parse({ kind: "memory", max_size: "2M" }, ORIGIN);
    assert.deepEqual(cacheSpecOf(parsed), { kind: "memory", maxSize: 2 * MiB });
  });

  it("refuses a bad max_size naming the file and the field, with what to write", () => {
    const err = refusal({ max_size: "512m" });
    assert.equal(
      err.message,
      `${ORIGIN}: max_size: units are upper case K, M, G or T (binary: 1K = 1024 bytes), got "512m"; write 512M`,
    );
    assert.equal(err.details.field, "max_size");
    assert.match(
      refusal({ max_size: "huge" }).message,
      /^config\/default\/compute\/caches\/results\.yaml: max_size: expected a size such as 64K, 512M, 1\.5G or 2GiB/,
    );
    assert.match(refusal({ max_size: -5 }).message, /max_size: expected a whole number of bytes .*got -5/);
    assert.match(refusal({ max_size: [1] }).message, /max_size: expected a size such as .*got a list/);
    assert.match(
      refusal({ max_size: 0 }).message,
      /max_size: must be at least 1 byte, got 0; to cache nothing, write kind: null/,
    );
    assert.match(refusal({ max_size: "1.1K" }).message, /max_size: "1\.1K" is 1126\.4 bytes, not a whole number/);
  });

  it("refuses an unknown kind, listing the known ones", () => {
    const err = refusal({ kind: "lru" });
    assert.equal(err.message, `${ORIGIN}: kind: expected one of null, memory, ttl, got "lru"`);
    assert.equal(err.details.field, "kind");
    assert.equal(refusal({ kind: 3 }).message, `${ORIGIN}: kind: expected one of null, memory, ttl, got 3`);
  });

  it("refuses a ttl cache without a ttl, and a bad ttl", () => {
    const err = refusal({ kind: "ttl", max_size: "1G" });
    assert.equal(err.message, `${ORIGIN}: ttl: is required for a ttl cache: how long an entry lives, e.g. 15m`);
    assert.equal(err.details.field, "ttl");
    assert.match(refusal({ kind: "ttl", ttl: 300 }).message, /^.*results\.yaml: ttl: expected a duration with a unit/);
    assert.match(refusal({ kind: "ttl", ttl: "0s" }).message, /ttl: must be at least 1ms/);
    assert.match(refusal({ kind: "null", ttl: "1m" }).message, /ttl: is for memory and ttl caches only/);
  });

  it("refuses unknown keys with the nearest known one", () => {
    assert.match(refusal({ maxsize: "1G" }).message, /maxsize: unknown key \(did you mean "max_size"\?\)/);
  });
});
