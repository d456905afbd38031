#!/usr/bin/env node
// Builds what the images run (deploy/docker/Dockerfile), as plain JavaScript under dist/:
//   dist/<service>/main.mjs   one ESM bundle per service: its code, the workspace libs and the npm
//                             packages it imports, so an image needs no node_modules and no tsx
//   dist/admin/main.mjs       tools/nats-admin.ts the same way (the machina-nats-bootstrap Job)
//   dist/vertex/client/, dist/vertex/node_modules/uplot/
//                             files vertex reads next to its module at run time (dashboard)
//   dist/protos/              the .proto files libs/protos loads at start (MACHINA_PROTOS_DIR)
//   dist/config/              config/ with every TypeScript module (code sources, computations)
//                             bundled to .js and the YAML that names one pointing at the .js
//                             (MACHINA_CONFIG_DIR; deploy/k8s mounts the same tree from a ConfigMap)
//
// The libs' package.json "exports" point at src/*.ts and their imports have no extensions
// (moduleResolution Bundler), so `tsc` output would not run under Node; esbuild bundles the
// sources as they are instead.
//
// Usage: node tools/build.mjs [--out DIR]   (`make build`, `pnpm run build`)

import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outArg = process.argv.indexOf("--out");
const OUT = path.resolve(outArg > 0 ? process.argv[outArg + 1] : path.join(ROOT, "dist"));

export const SERVICES = ["fetch", "invoke", "aggregate", "data", "compute", "vertex"];

// Files a service reads relative to its own module at run time, which a bundle does not carry:
// [source in the repo, destination under dist/<service>/].
const ASSETS = {
  vertex: [["services/vertex/src/dashboard/client", "client"]],
};
// Packages a service resolves with require.resolve at run time (to read their files), copied whole.
const RUNTIME_PACKAGES = {
  vertex: ["uplot"],
};

// Bundled CommonJS packages (cassandra-driver, protobufjs, convict) call require() for builtins.
const BANNER = [
  'import { createRequire as __machinaCreateRequire } from "node:module";',
  "const require = __machinaCreateRequire(import.meta.url);",
].join("\n");

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
  // Optional native codecs cassandra-driver tries to load inside try/catch.
  external: ["lz4", "snappy", "kerberos"],
  banner: { js: BANNER },
};

async function buildService(name) {
  const dir = path.join(OUT, name);
  await build({
    ...common,
    entryPoints: [path.join(ROOT, "services", name, "src", "main.ts")],
    outfile: path.join(dir, "main.mjs"),
  });
  for (const [from, to] of ASSETS[name] ?? []) {
    const src = path.join(ROOT, from);
    if (existsSync(src)) cpSync(src, path.join(dir, to), { recursive: true });
  }
  const req = createRequire(path.join(ROOT, "services", name, "package.json"));
  for (const pkg of RUNTIME_PACKAGES[name] ?? []) {
    let pkgJson;
    try {
      pkgJson = req.resolve(`${pkg}/package.json`);
    } catch {
      continue; // not a dependency (yet): nothing reads it
    }
    cpSync(path.dirname(pkgJson), path.join(dir, "node_modules", pkg), { recursive: true, dereference: true });
  }
}

const TS_MODULE = /\.(m?)ts$/;

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

/** Copies config/ to `out`, bundling each TypeScript module to .js and rewriting `module: x.ts` in YAML. */
export async function buildConfig(out) {
  const src = path.join(ROOT, "config");
  rmSync(out, { recursive: true, force: true });
  for (const file of walk(src)) {
    const rel = path.relative(src, file);
    const dest = path.join(out, rel);
    mkdirSync(path.dirname(dest), { recursive: true });
    if (TS_MODULE.test(file) && !file.endsWith(".d.ts")) {
      await build({
        ...common,
        sourcemap: false,
        banner: undefined,
        entryPoints: [file],
        outfile: dest.replace(TS_MODULE, ".$1js"),
      });
    } else if (/\.ya?ml$/.test(file)) {
      const text = readFileSync(file, "utf8");
      writeFileSync(dest, text.replace(/(\bmodule:\s*["']?[^\s"',}]+)\.(m?)ts\b/g, "$1.$2js"));
    } else {
      cpSync(file, dest);
    }
  }
}

async function main() {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  await Promise.all([
    ...SERVICES.map(buildService),
    build({
      ...common,
      entryPoints: [path.join(ROOT, "tools", "nats-admin.ts")],
      outfile: path.join(OUT, "admin", "main.mjs"),
    }),
  ]);
  cpSync(path.join(ROOT, "protos"), path.join(OUT, "protos"), {
    recursive: true,
    filter: (p) => !p.endsWith(".md"),
  });
  await buildConfig(path.join(OUT, "config"));
  writeFileSync(
    path.join(OUT, "build.json"),
    JSON.stringify({ services: SERVICES.map((s) => ({ name: s, entry: `${s}/main.mjs` })) }, null, 2) + "\n",
  );
  process.stdout.write(
    `built ${SERVICES.length} services, protos and config into ${path.relative(ROOT, OUT) || OUT}\n`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
