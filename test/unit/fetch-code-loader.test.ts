// Loading source modules from a config tree, as the fetch service does at start: where a module
// is looked up, and how a missing, broken or incomplete one is refused, naming the file.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { loadComponents } from "@machina/config";
import { compileSource, loadCodeModules, type SourceDef } from "@machina/fetch";
import { MachinaError } from "@machina/wire";

function writeTree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-code-loader-"));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

async function loadTree(configDir: string, env: Record<string, string> = {}, mode?: string): Promise<SourceDef[]> {
  const opts = { configDir, env, mode };
  const declared = loadComponents("fetch/sources", opts).map((c) =>
    compileSource({ name: c.name, ...c.doc }, c.origins.join(" + ")),
  );
  return loadCodeModules(declared, opts);
}

describe("loading code modules", () => {
  const yaml = (module: string, extra = "") => `name: src
limiter: unlimited
manager: { type: http, base_url: "http://127.0.0.1:9" }
code: { module: ${module} }
${extra}`;
  const load = async (files: Record<string, string>, mode?: string) => {
    const dir = writeTree(files);
    try {
      return await loadTree(dir, {}, mode);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const refused = async (files: Record<string, string>, pattern: RegExp) => {
    await assert.rejects(
      load(files),
      (e) => e instanceof MachinaError && e.code === "BAD_REQUEST" && pattern.test(e.message),
    );
  };

  it("stops on a module without a default export, naming the file and what it does export", async () => {
    await refused(
      {
        "default/fetch/sources/src.yaml": yaml("./src.mjs"),
        "default/fetch/sources/src.mjs": "export const queries = {};\n",
      },
      /src\.mjs: default: the module has no default export \(it exports queries\); write export default \{ queries: /,
    );
  });

  it("stops on a query without parseResponse, naming the file and the missing hook", async () => {
    await refused(
      {
        "default/fetch/sources/src.yaml": yaml("./src.ts"),
        "default/fetch/sources/src.ts":
          "export default { queries: { top: { buildRequest: () => ({ url: '/' }) } } };\n",
      },
      /src\.ts: queries\.top\.parseResponse: is missing; write /,
    );
    await refused(
      {
        "default/fetch/sources/src.yaml": yaml("./src.ts"),
        "default/fetch/sources/src.ts":
          "export default { queries: { Top: { buildRequest() {}, parseResponse() {} } } };\n",
      },
      /src\.ts: queries\.Top: "Top" is not a name/,
    );
  });

  it("stops on a module that is missing or does not load, naming the source file and code.module", async () => {
    await refused(
      { "default/fetch/sources/src.yaml": yaml("./gone.ts") },
      /src\.yaml: code\.module: \.\/gone\.ts not found \(looked for .*gone\.ts\)/,
    );
    await refused(
      { "default/fetch/sources/src.yaml": yaml("./src.ts"), "default/fetch/sources/src.ts": "export default {{;\n" },
      /src\.yaml: code\.module: .*src\.ts failed to load: /,
    );
  });

  it("refuses a query both declared and coded, and a source with neither", async () => {
    const query = "queries:\n  top: { path: /x, extract: { x: { type: website, path: x } } }\n";
    await refused(
      {
        "default/fetch/sources/src.yaml": yaml("./src.mjs", query),
        "default/fetch/sources/src.mjs":
          "export default { queries: { top: { buildRequest() {}, parseResponse() {} } } };\n",
      },
      /src\.yaml: queries\.top: is declared here and also implemented by .*src\.mjs; keep one of them/,
    );
    assert.throws(
      () =>
        compileSource(
          { name: "src", limiter: "unlimited", manager: { type: "http", base_url: "http://127.0.0.1:9" } },
          "src.yaml",
        ),
      (e) =>
        e instanceof MachinaError &&
        /queries: declare at least one query, or a module under code\.module/.test(e.message),
    );
  });

  it("finds a module in default/ when a mode folder only overrides the YAML", async () => {
    const [def] = await load(
      {
        "default/fetch/sources/src.yaml": yaml("./src.mjs"),
        "default/fetch/sources/src.mjs":
          "export default { queries: { top: { buildRequest() {}, parseResponse() {} } } };\n",
        "staging/fetch/sources/src.yaml": 'manager: { base_url: "http://127.0.0.1:10" }\n',
      },
      "staging",
    );
    assert.equal(def.manager.baseUrl, "http://127.0.0.1:10");
    assert.match(def.code?.loaded?.file ?? "", /default\/fetch\/sources\/src\.mjs$/);
    assert.deepEqual([...def.queries.keys()], ["top"]);
  });
});
