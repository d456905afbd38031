// ComponentSet over the file config: components of a kind no env variable overrides come from the
// tree the chain already parsed (naming their files), so a big ledger is not parsed again at start;
// a kind an env variable overrides is read from the files with the env, as before the chain.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { loadFileConfig } from "@machina/config-chain";
import { ComponentSet } from "@machina/runtime";

function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-component-set-"));
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(dir, "default", rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return dir;
}

describe("ComponentSet over the file config", () => {
  const files = {
    "invoke/ledgers/big.yaml": "lead_id: domain\nleads:\n  - domain: a.example\n  - domain: b.example\n",
    "fetch/sources/api.yaml": "manager: { base_url: http://127.0.0.1:1 }\n",
  };

  it("serves an unoverridden kind from the parsed tree, naming its file, without reading the files again", () => {
    const dir = configDir(files);
    const fc = loadFileConfig({ configDir: dir, env: {} });
    const [file] = fc.origins.get("invoke/ledgers/big") ?? [];
    assert.match(file, /default\/invoke\/ledgers\/big\.yaml$/);
    const set = ComponentSet.fromFiles(fc.root, fc.tree, { configDir: dir, env: {} }, fc.origins);
    // Gone from disk: only the tree can answer now.
    rmSync(path.join(dir, "default/invoke"), { recursive: true });
    const [big] = set.docs("invoke/ledgers");
    assert.equal(big.name, "big");
    assert.deepEqual(big.origins, [file]);
    assert.deepEqual((big.doc.leads as unknown[]).length, 2);
    // A copy: a compile that changes its doc leaves the chain's tree as it was.
    (big.doc.leads as unknown[]).pop();
    assert.equal((set.docs("invoke/ledgers")[0].doc.leads as unknown[]).length, 2);
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads the files when it has no tree (a config chain that could not be read)", () => {
    const dir = configDir(files);
    const set = ComponentSet.fromFiles("", {}, { configDir: dir, env: {} });
    assert.deepEqual(
      set.docs("invoke/ledgers").map((d) => d.name),
      ["big"],
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads a kind an env variable overrides from the files, with the env applied", () => {
    const dir = configDir(files);
    const env = { MACHINA_FETCH_SOURCES_API_MANAGER_BASE_URL: "http://127.0.0.1:2" };
    const fc = loadFileConfig({ configDir: dir, env });
    assert.equal(fc.origins.has("fetch/sources/api"), false, "an overridden kind is not served from the tree");
    assert.equal(fc.origins.has("invoke/ledgers/big"), true);
    assert.deepEqual(
      fc.env.map((e) => e.name),
      ["MACHINA_FETCH_SOURCES_API_MANAGER_BASE_URL"],
    );
    const set = ComponentSet.fromFiles(fc.root, fc.tree, { configDir: dir, env }, fc.origins);
    const [api] = set.docs("fetch/sources");
    assert.equal((api.doc.manager as { base_url: string }).base_url, "http://127.0.0.1:2");
    assert.ok(
      api.origins.some((o) => o.startsWith("env ")),
      `origins name the variable: ${api.origins.join(", ")}`,
    );
    rmSync(dir, { recursive: true, force: true });
  });
});
