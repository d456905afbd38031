// Loading code-defined computations from a config tree, as the compute service does at start:
// the example network's traffic_score, modules in a temp tree (mode folder over default, helpers in
// subfolders), the name rule on file names, and each way a bad module is refused naming the file
// and the part; a name taken by a built-in is refused by the registry.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { DEFAULT_CONFIG_DIR } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import {
  BUILTIN_COMPUTATIONS,
  COMPUTATIONS_FOLDER,
  ComputationRegistry,
  loadCodeComputations,
  type Computation,
  type ComputeDeps,
} from "@machina/compute";
import { isMachinaError } from "@machina/wire";

const trees: string[] = [];
after(() => {
  for (const dir of trees) rmSync(dir, { recursive: true, force: true });
});

// A config tree of `files` (paths below the config root); each test gets its own, so a module's
// URL is new and Node's module cache never answers an older one.
function writeTree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-compute-code-"));
  trees.push(dir);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

const at = (name: string, mode = "default") => `${mode}/${COMPUTATIONS_FOLDER}/${name}`;

const load = (files: Record<string, string>, mode?: string) =>
  loadCodeComputations({ configDir: writeTree(files), mode, env: {} });

const GOOD = `export default {
  description: "Doubles x",
  args: (f) => f.object({ x: f.int(0, 100) }),
  async run({ x }) {
    return [{ x: x * 2 }];
  },
};
`;

const refused = (message: RegExp) => (err: unknown) => {
  assert.ok(isMachinaError(err, "BAD_REQUEST"), String(err));
  assert.match((err as Error).message, message);
  return true;
};

const noDeps = {} as ComputeDeps;

describe("compute: code-defined computations", () => {
  it("loads the example network's traffic_score and runs it over ctx", async () => {
    const loaded = await loadCodeComputations({ configDir: DEFAULT_CONFIG_DIR, mode: "default", env: {} });
    const score = loaded.find((c) => c.name === "traffic_score");
    assert.ok(score !== undefined, `loaded: ${loaded.map((c) => c.name).join(", ")}`);
    assert.match(score.origin, /config\/default\/compute\/computations\/traffic_score\.ts$/);
    assert.equal(score.cacheable, true);
    assert.match(score.description, /^Traffic score of one website/);
    const calls: [string, JsonObject][] = [];
    const deps: ComputeDeps = {
      data: {
        latest: async (type: string, key: JsonObject) => {
          calls.push([`latest ${type}`, key]);
          return { domain: key.domain, visits: 1000, bounce_rate: 0.25 };
        },
      } as unknown as ComputeDeps["data"],
      call: async (name, args) => {
        calls.push([name, args]);
        return { rows: [{ percent: 50 }], next: "" };
      },
    };
    const out = await score.run({ domain: "example.com" }, deps);
    assert.deepEqual(out, {
      rows: [{ domain: "example.com", visits: 1000, bounce_rate: 0.25, growth_percent: 50, score: 1125 }],
      next: "",
    });
    assert.deepEqual(calls, [
      ["latest website", { domain: "example.com" }],
      ["growth", { type: "website", key: { domain: "example.com" }, field: "visits", window: "30d" }],
    ]);
    await assert.rejects(
      score.run({ domain: "example.com", window: "1y" }, deps),
      refused(/^computation "traffic_score": args\.window: expected one of 7d, 30d, 90d, got "1y"$/),
    );
    // Its name is free among the built-ins, so the service registers it beside them.
    assert.ok(new ComputationRegistry([...BUILTIN_COMPUTATIONS, ...loaded]).has("traffic_score"));
  });

  it("loads .ts and .mjs modules named after their files, sorted, with their args, cacheable and paging", async () => {
    const loaded = await load({
      [at("double.ts")]: GOOD,
      [at("clock.mjs")]: `export default {
  description: "Now",
  cacheable: false,
  args: (f) => f.object({}),
  async run(_args, _ctx, paging) {
    return { rows: [{ limit: paging.limit, page: paging.page }], next: "more" };
  },
};
`,
      [at("helpers/shared.ts")]: "export const x = 1;\n",
      [at("README.md")]: "not a module\n",
      [at("types.d.ts")]: "export type T = number;\n",
    });
    assert.deepEqual(
      loaded.map((c) => c.name),
      ["clock", "double"],
    );
    const [clock, double] = loaded as [Computation, Computation];
    assert.equal(clock.cacheable, false);
    assert.equal(double.cacheable, true);
    assert.match(double.origin, /default\/compute\/computations\/double\.ts$/);
    assert.deepEqual(await double.run({ x: 21 }, noDeps), { rows: [{ x: 42 }], next: "" });
    assert.deepEqual(await clock.run({}, noDeps, { limit: 5, page: "p" }), {
      rows: [{ limit: 5, page: "p" }],
      next: "more",
    });
    await assert.rejects(
      double.run({ x: 101 }, noDeps),
      refused(/^computation "double": args\.x: expected an integer from 0 to 100, got 101$/),
    );
    await assert.rejects(double.run({ y: 1 }, noDeps), refused(/^computation "double": args\.y: unknown key/));
  });

  it("lets a module import its helpers from a subfolder", async () => {
    const [c] = await load({
      [at("helpers/scale.ts")]: "export const scale = (v: number): number => v * 10;\n",
      [at("scaled.ts")]: `import { scale } from "./helpers/scale.ts";
export default {
  description: "Scales x",
  args: (f: any) => f.object({ x: f.int() }),
  async run({ x }: { x: number }) {
    return [{ x: scale(x) }];
  },
};
`,
    });
    assert.deepEqual(await c.run({ x: 3 }, noDeps), { rows: [{ x: 30 }], next: "" });
  });

  it("takes a mode folder's module over default's of the same name, and default's others", async () => {
    const files = {
      [at("double.ts")]: GOOD,
      [at("only_default.ts")]: GOOD.replace("Doubles x", "From default"),
      [at("double.ts", "staging")]: GOOD.replace("Doubles x", "Doubles x in staging"),
      [at("only_staging.mjs", "staging")]: GOOD.replace("Doubles x", "From staging"),
    };
    const staging = await load(files, "staging");
    assert.deepEqual(
      staging.map((c) => [c.name, c.description]),
      [
        ["double", "Doubles x in staging"],
        ["only_default", "From default"],
        ["only_staging", "From staging"],
      ],
    );
    assert.match(staging[0].origin, /staging\/compute\/computations\/double\.ts$/);
    const byDefault = await load(files);
    assert.deepEqual(
      byDefault.map((c) => [c.name, c.description]),
      [
        ["double", "Doubles x"],
        ["only_default", "From default"],
      ],
    );
    // A mode without a computations folder, or a tree without any, loads default's or nothing.
    assert.deepEqual(await load({ "default/data/types/x.yaml": "" }), []);
    assert.equal((await load({ [at("double.ts")]: GOOD }, "prod")).length, 1);
  });

  it("refuses a file name breaking the name rule, and two modules of one name in a folder", async () => {
    await assert.rejects(
      load({ [at("Traffic-Score.ts")]: GOOD }),
      refused(
        /compute\/computations\/Traffic-Score\.ts: the file name is the computation's name: "Traffic-Score" is not a name: use a lower-case letter.*\(write "traffic_score"\)$/,
      ),
    );
    await assert.rejects(load({ [at("2x.ts")]: GOOD }), refused(/2x\.ts: the file name is the computation's name/));
    await assert.rejects(
      load({ [at("double.ts")]: GOOD, [at("double.mjs")]: GOOD }),
      refused(/double\.(ts|mjs): .*double\.(ts|mjs) also defines computation "double"; keep one of them$/),
    );
  });

  it("refuses a name a built-in has, through the registry, naming both origins", async () => {
    const loaded = await load({ [at("latest.ts")]: GOOD });
    assert.throws(
      () => new ComputationRegistry([...BUILTIN_COMPUTATIONS, ...loaded]),
      refused(
        /compute\/computations\/latest\.ts: computation "latest" is already registered by built-in; give it another name$/,
      ),
    );
  });

  const bad: [string, string, RegExp][] = [
    [
      "no default export",
      "export const run = () => [];\n",
      /x\.ts: default: the module has no default export \(it exports run\); write export default \{ description, args\(f\)/,
    ],
    [
      "a default that is not an object",
      "export default function () {}\n",
      /x\.ts: default: the default export is a function, not an object/,
    ],
    ["a list as default", "export default [];\n", /x\.ts: default: the default export is a list, not an object/],
    [
      "a misspelt part",
      GOOD.replace("description:", "cachable: false, description:"),
      /x\.ts: cachable: unknown part \(did you mean "cacheable"\?\); expected description, args, cacheable, run/,
    ],
    ["no description", GOOD.replace('description: "Doubles x",', ""), /x\.ts: description: is missing; write /],
    [
      "an empty description",
      GOOD.replace('"Doubles x"', '"  "'),
      /x\.ts: description: is the string " {2}", not a non-empty string/,
    ],
    ["no run", GOOD.replace(/async run[\s\S]*?\n {2}\},\n/, ""), /x\.ts: run: is missing; write /],
    [
      "a run that is not a function",
      GOOD.replace(/async run[\s\S]*?\n {2}\},\n/, "run: 5,\n"),
      /x\.ts: run: is number 5, not a function/,
    ],
    [
      "a cacheable that is not a flag",
      GOOD.replace("description:", 'cacheable: "no", description:'),
      /x\.ts: cacheable: is the string "no", not true or false/,
    ],
    ["no args", GOOD.replace(/ {2}args: .*\n/, ""), /x\.ts: args: is missing; write /],
    [
      "args that are not a function",
      GOOD.replace(/args: .*\n/, "args: { x: 1 },\n"),
      /x\.ts: args: is an object, not a function of the field builders/,
    ],
    [
      "args that throw",
      GOOD.replace(/args: .*\n/, "args: (f) => f.nosuch(),\n"),
      /x\.ts: args: args\(f\) threw: f\.nosuch is not a function/,
    ],
    [
      "args answering a non-schema",
      GOOD.replace(/args: .*\n/, "args: () => ({ x: 'int' }),\n"),
      /x\.ts: args: args\(f\) returned an object, not a schema; return one built with f/,
    ],
    [
      "args answering nothing",
      GOOD.replace(/args: .*\n/, "args() {},\n"),
      /x\.ts: args: args\(f\) returned undefined, not a schema/,
    ],
    ["a syntax error", "export default {\n", /x\.ts: failed to load: /],
    ["a throw at import", 'throw new Error("no config for x");\n', /x\.ts: failed to load: no config for x$/],
    ["an import that does not resolve", 'import "./nope.ts";\nexport default {};\n', /x\.ts: failed to load: .*nope/],
  ];
  it("refuses an ES module exporting nothing", async () => {
    // (A .ts file without import or export may load as CommonJS, whose default is its empty exports.)
    await assert.rejects(
      load({ [at("x.mjs")]: "const a = 1;\n" }),
      refused(/x\.mjs: default: the module has no default export; write /),
    );
  });

  for (const [what, text, message] of bad)
    it(`refuses a module with ${what}, naming the file and the part`, async () => {
      await assert.rejects(load({ [at("x.ts")]: text }), refused(message));
    });

  it("fails a run answering something other than rows, naming the file", async () => {
    for (const answer of ["5", "[1]", "{ rows: 'x' }", "{ rows: [], next: 3 }", "null"]) {
      const [c] = await load({ [at("x.ts")]: GOOD.replace("[{ x: x * 2 }]", answer) });
      await assert.rejects(
        c.run({ x: 1 }, noDeps),
        (err: unknown) =>
          isMachinaError(err, "INTERNAL") &&
          /compute\/computations\/x\.ts: run answered .*, not a list of rows \(objects\) or \{ rows, next \}/.test(
            (err as Error).message,
          ),
        answer,
      );
    }
    const [ok] = await load({ [at("x.ts")]: GOOD.replace("[{ x: x * 2 }]", "{ rows: [{ a: 1 }] }") });
    assert.deepEqual(await ok.run({ x: 1 }, noDeps), { rows: [{ a: 1 }], next: "" });
  });
});
