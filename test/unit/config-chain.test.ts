// The config chain without a server: canonical hashing (root and patch), patch application, kind
// validation before storing, and which layer `explain` names for a key.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { defineKind, field } from "@machina/config";
import {
  KindRegistry,
  applyOps,
  canonicalHash,
  canonicalJson,
  explainKey,
  explainKeyWithOwner,
  loadFileConfig,
  normalizeOps,
  patchHash,
  withEnv,
} from "@machina/config-chain";
import type { ChainPatch, ConfigTree } from "@machina/config-chain";
import { isMachinaError } from "@machina/wire";

const WIDGET = defineKind({
  kind: "fetch/widgets",
  doc: "A widget for these tests.",
  schema: field.object({
    size: field.int(1).describe("How big."),
    colour: field.oneOf(["red", "blue"]).default("red").describe("Its colour."),
    timeout: field.duration().default(5000).describe("How long to wait."),
  }),
});

/** A config root with `files` (relative path → text), laid out as config/<folder>/<service>/<kind>/<name>.<ext>. */
function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-chain-"));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

function refusal(fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    assert.ok(isMachinaError(err), `expected a MachinaError, got ${String(err)}`);
    return { code: err.code, message: err.message, details: err.details };
  }
  assert.fail("expected a refusal");
}

describe("canonical hashing", () => {
  it("writes one text per value whatever the key order, and keeps list order", () => {
    assert.equal(canonicalJson({ b: [2, { d: 4, c: 3 }], a: 1 }), '{"a":1,"b":[2,{"c":3,"d":4}]}');
    assert.equal(canonicalHash({ b: 1, a: { y: 2, x: 3 } }), canonicalHash({ a: { x: 3, y: 2 }, b: 1 }));
    assert.notEqual(canonicalHash([1, 2]), canonicalHash([2, 1]));
    const expected = createHash("sha256").update('{"a":1,"b":[2,{"c":3,"d":4}]}').digest("hex");
    assert.equal(canonicalHash({ b: [2, { d: 4, c: 3 }], a: 1 }), expected);
  });

  it("orders keys by code point, not by locale, and refuses values JSON cannot hold", () => {
    assert.equal(canonicalJson({ b: 1, B: 2, á: 3, a: 4 }), '{"B":2,"a":4,"b":1,"á":3}');
    assert.throws(() => canonicalJson({ x: Number.NaN }), /x: NaN has no JSON form/);
    assert.throws(() => canonicalJson({ f: () => 1 }), /f: a function has no JSON form/);
    assert.throws(() => canonicalHash({ a: { b: [1, { c: Infinity }] } }), /^TypeError: a\.b\[1\]\.c: Infinity/);
    assert.throws(() => canonicalJson([[0, Number.NaN]]), /^TypeError: \[0\]\[1\]: NaN/);
  });

  it("hashes a value larger than one streamed piece as the sha-256 of its whole text", () => {
    // 100,000 leads: far more than the 64 KiB pieces the hash is fed in.
    const big = {
      invoke: {
        ledgers: { big: { leads: Array.from({ length: 100_000 }, (_, i) => ({ rank: i, domain: `s${i}.example` })) } },
      },
    };
    const text = canonicalJson(big);
    assert.ok(text.length > 1 << 20, `${text.length} characters`);
    assert.ok(text.startsWith('{"invoke":{"ledgers":{"big":{"leads":[{"domain":"s0.example","rank":0},'));
    assert.equal(canonicalHash(big), createHash("sha256").update(text, "utf8").digest("hex"));
  });

  it("hashes a patch by parent, ops, author and time, the same whichever encoding carried the ops", () => {
    const asJson = normalizeOps([
      { op: "remove", path: "/fetch/widgets/a" },
      { op: "add", path: "/fetch/widgets/b", value: { size: 2 } },
    ]);
    // A protobuf PatchOp always carries value and from: they are not part of the op when it does not use them.
    const asProto = normalizeOps([
      { op: "remove", path: "/fetch/widgets/a", value: null, from: "" },
      { op: "add", path: "/fetch/widgets/b", value: { size: 2 }, from: "" },
    ]);
    const body = { parent: "p0", ops: asJson, author: "ana", createdAt: 1_700_000_000_000 };
    const h = patchHash(body);
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.equal(patchHash({ ...body, ops: asProto }), h);
    assert.notEqual(patchHash({ ...body, parent: "p1" }), h);
    assert.notEqual(patchHash({ ...body, author: "bo" }), h);
    assert.notEqual(patchHash({ ...body, createdAt: body.createdAt + 1 }), h);
    assert.equal(
      h,
      canonicalHash({ author: "ana", createdAt: 1_700_000_000_000, ops: asJson, parent: "p0" }),
      "the hash is the SHA-256 of the canonical form",
    );
  });

  it("gives the file config one root hash, whatever the key order in the files and whatever the env", () => {
    const a = configDir({ "default/fetch/widgets/w.yaml": "size: 3\ncolour: blue\n" });
    const b = configDir({ "default/fetch/widgets/w.json": '{"colour":"blue","size":3}' });
    const c = configDir({ "default/fetch/widgets/w.yaml": "size: 4\ncolour: blue\n" });
    const ra = loadFileConfig({ configDir: a, env: {} });
    assert.deepEqual(ra.tree, { fetch: { widgets: { w: { size: 3, colour: "blue" } } } });
    assert.equal(loadFileConfig({ configDir: b, env: {} }).root, ra.root);
    assert.equal(loadFileConfig({ configDir: a, env: { MACHINA_FETCH_WIDGETS_W_SIZE: "9" } }).root, ra.root);
    assert.notEqual(loadFileConfig({ configDir: c, env: {} }).root, ra.root);
  });
});

describe("patch operations", () => {
  const tree: ConfigTree = { fetch: { widgets: { w: { size: 3, tags: ["a", "b"] } } } };

  it("applies RFC 6902 operations to a copy and leaves the tree as it was", () => {
    const out = applyOps(
      tree,
      normalizeOps([
        { op: "replace", path: "/fetch/widgets/w/size", value: 5 },
        { op: "add", path: "/fetch/widgets/w/tags/-", value: "c" },
        { op: "copy", from: "/fetch/widgets/w", path: "/fetch/widgets/v" },
        { op: "remove", path: "/fetch/widgets/v/tags" },
      ]),
    );
    assert.deepEqual(out, { fetch: { widgets: { w: { size: 5, tags: ["a", "b", "c"] }, v: { size: 5 } } } });
    assert.deepEqual(tree, { fetch: { widgets: { w: { size: 3, tags: ["a", "b"] } } } });
  });

  it("refuses the whole patch when one operation cannot apply, naming it", () => {
    const ops = normalizeOps([
      { op: "replace", path: "/fetch/widgets/w/size", value: 5 },
      { op: "test", path: "/fetch/widgets/w/size", value: 6 },
    ]);
    const r = refusal(() => applyOps(tree, ops));
    assert.equal(r.code, "BAD_REQUEST");
    assert.match(r.message, /^ops\[1\] \(test \/fetch\/widgets\/w\/size\): /);
    assert.equal(r.details.field, "ops[1]");
    assert.match(
      refusal(() => applyOps(tree, normalizeOps([{ op: "remove", path: "/fetch/none/x" }]))).message,
      /ops\[0\]/,
    );
  });

  it("refuses malformed operations before applying anything", () => {
    assert.match(refusal(() => normalizeOps([])).message, /at least one operation/);
    assert.match(refusal(() => normalizeOps([{ op: "merge", path: "/a" }])).message, /ops\[0\]: unknown op "merge"/);
    assert.match(refusal(() => normalizeOps([{ op: "add", path: "fetch/x", value: 1 }])).message, /JSON pointer/);
    assert.match(refusal(() => normalizeOps([{ op: "move", path: "/a/b", from: "" }])).message, /move needs "from"/);
  });
});

describe("kind validation before storing", () => {
  const registry = new KindRegistry().register(WIDGET);
  const before: ConfigTree = { fetch: { widgets: { w: { size: 3 } }, gadgets: { g: { anything: true } } } };
  const change = (ops: Parameters<typeof normalizeOps>[0]) => () =>
    registry.check(before, applyOps(before, normalizeOps(ops)));

  it("accepts a valid change, and does not re-check components the patch left alone", () => {
    change([{ op: "add", path: "/fetch/widgets/v", value: { size: 1, colour: "blue" } }])();
  });

  it("names the component and the field of a value of the wrong type", () => {
    const r = refusal(change([{ op: "replace", path: "/fetch/widgets/w/size", value: "big" }]));
    assert.equal(r.code, "BAD_REQUEST");
    assert.match(r.message, /^fetch\/widgets\/w: size: /);
    assert.equal(r.details.field, "size");
  });

  it("names an unknown key, a bad component name and an unknown service or kind", () => {
    assert.match(
      refusal(change([{ op: "add", path: "/fetch/widgets/w/colr", value: "red" }])).message,
      /w: colr: unknown key/,
    );
    assert.match(
      refusal(change([{ op: "add", path: "/fetch/widgets/Big-One", value: { size: 1 } }])).message,
      /Big-One/,
    );
    assert.match(refusal(change([{ op: "add", path: "/fetcher", value: {} }])).message, /unknown service "fetcher"/);
    const r = refusal(change([{ op: "replace", path: "/fetch/gadgets/g/anything", value: false }]));
    assert.match(r.message, /fetch\/gadgets: no validator is registered/);
    new KindRegistry("accept")
      .register(WIDGET)
      .check(
        before,
        applyOps(before, normalizeOps([{ op: "replace", path: "/fetch/gadgets/g/anything", value: false }])),
      );
  });

  it("runs extra validators of a kind, with the whole tree for checks across components", () => {
    const strict = new KindRegistry().register(WIDGET, {
      kind: "fetch/widgets",
      validate(name, _doc, origin, tree) {
        if (Object.keys(tree.fetch.widgets).length > 2) throw new Error(`${origin}: at most two widgets`);
      },
    });
    const two = applyOps(before, normalizeOps([{ op: "add", path: "/fetch/widgets/v", value: { size: 1 } }]));
    strict.check(before, two);
    const three = applyOps(two, normalizeOps([{ op: "add", path: "/fetch/widgets/u", value: { size: 1 } }]));
    assert.throws(() => strict.check(two, three), /fetch\/widgets\/u: at most two widgets/);
  });
});

describe("explain", () => {
  const dir = configDir({
    "default/fetch/widgets/w.yaml": "size: 3\ncolour: blue\n",
    "default/fetch/widgets/w.json": '{"size": 1}',
    "live/fetch/widgets/w.yaml": "colour: red\n",
  });
  const env = { MACHINA_FETCH_WIDGETS_W_SIZE: "8" };
  const files = loadFileConfig({ configDir: dir, mode: "live", env });
  const registry = new KindRegistry().register(WIDGET);
  const patch: ChainPatch = {
    hash: "h1",
    parent: files.root,
    ops: normalizeOps([{ op: "add", path: "/fetch/widgets/w/timeout", value: "9s" }]),
    author: "ana",
    createdAt: 1,
  };
  const tree = applyOps(files.tree, patch.ops);
  const input = { files, patches: [patch], effective: withEnv(tree, files.env), registry };

  it("names env over everything, with the variable", () => {
    const e = explainKey(input, "fetch.widgets.w.size");
    assert.deepEqual(e, {
      key: "/fetch/widgets/w/size",
      value: 8,
      layer: "env",
      origin: "env MACHINA_FETCH_WIDGETS_W_SIZE",
    });
  });

  it("names the patch that set a key, by hash", () => {
    const e = explainKey(input, "/fetch/widgets/w/timeout");
    assert.equal(e.layer, "patch");
    assert.equal(e.origin, "patch h1");
    assert.equal(e.value, "9s");
    assert.equal(explainKey(input, "fetch.widgets.w").layer, "env", "a subtree names the highest layer in it");
  });

  it("names the mode file over the default file, and the file (YAML over JSON) that set the key", () => {
    assert.deepEqual(explainKey(input, "fetch.widgets.w.colour"), {
      key: "/fetch/widgets/w/colour",
      value: "red",
      layer: "mode file",
      origin: "mode file config/live/fetch/widgets/w.yaml",
    });
    const noMode = { ...input, files: loadFileConfig({ configDir: dir, env: {} }), patches: [] };
    noMode.effective = noMode.files.tree;
    assert.equal(
      explainKey(noMode, "fetch.widgets.w.colour").origin,
      "default file config/default/fetch/widgets/w.yaml",
    );
    assert.equal(explainKey(noMode, "fetch.widgets.w.size").value, 3);
  });

  it("names the schema default for a key no layer sets, and unset for a key nothing knows", () => {
    const plain = { ...input, patches: [], effective: withEnv(files.tree, files.env) };
    assert.deepEqual(explainKey(plain, "fetch.widgets.w.timeout"), {
      key: "/fetch/widgets/w/timeout",
      value: 5000,
      layer: "schema default",
      origin: "schema default",
    });
    assert.equal(explainKey(plain, "fetch.widgets.w.shape").layer, "unset");
    assert.match(refusal(() => explainKey(plain, "fetch.widgets")).message, /name a component/);
  });

  it("names the schema default for a key a patch removed, even when a file set it", () => {
    const removal: ChainPatch = {
      ...patch,
      hash: "h2",
      ops: normalizeOps([{ op: "remove", path: "/fetch/widgets/w/colour" }]),
    };
    const removedTree = applyOps(tree, removal.ops);
    const e = explainKey(
      { ...input, patches: [patch, removal], effective: withEnv(removedTree, files.env) },
      "fetch.widgets.w.colour",
    );
    assert.deepEqual([e.layer, e.value], ["schema default", "red"]);
  });

  it("asks the owning service for the schema default when no local kind declares it", async () => {
    const asked: string[] = [];
    const remote = new KindRegistry().registerServices(
      ["fetch"],
      async () => undefined,
      async (service, kind, name, doc) => {
        asked.push(`${service} ${kind} ${name} ${JSON.stringify(doc)}`);
        return { ...(doc as object), colour: "red", timeout: 5000 };
      },
    );
    const plain = { ...input, patches: [], effective: withEnv(files.tree, files.env), registry: remote };
    assert.equal(explainKey(plain, "fetch.widgets.w.timeout").layer, "unset", "the sync explain asks nobody");
    const e = await explainKeyWithOwner(plain, "fetch.widgets.w.timeout");
    assert.deepEqual([e.layer, e.origin, e.value], ["schema default", "schema default", 5000]);
    assert.deepEqual(asked, ['fetch fetch/widgets w {"size":8,"colour":"red"}']);
    assert.equal((await explainKeyWithOwner(plain, "fetch.widgets.w.shape")).layer, "unset");
    assert.equal((await explainKeyWithOwner(plain, "fetch.widgets.w.size")).layer, "env", "set layers need no owner");
  });
});
