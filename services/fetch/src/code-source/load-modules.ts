import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { componentError, resolveConfigSource, type ConfigSourceOptions } from "@machina/config";
import { compileTemplate, SOURCE_KIND, type QueryDef, type SourceDef } from "../source";
import { checkCodeModule } from "./check-module";
import type { CodeSource } from "./code-source";

/**
 * Imports the module of every source with a `code` block and adds its queries to the source;
 * a module that is missing, fails to load or does not implement `CodeSource` throws BAD_REQUEST
 * naming the file, so the service stops at start-up. `opts` locates the config tree as for
 * `loadComponents`; a relative `code.module` is looked up in the mode's folder, then `default`'s.
 */
export async function loadCodeModules(
  defs: readonly SourceDef[],
  opts: ConfigSourceOptions = {},
): Promise<SourceDef[]> {
  const { configDir, mode } = resolveConfigSource(opts);
  const folders = mode === "default" ? ["default"] : [mode, "default"];
  const dirs = folders.map((f) => path.join(configDir, f, SOURCE_KIND.kind));
  const out: SourceDef[] = [];
  for (const def of defs) {
    if (def.code === undefined || def.code.loaded !== undefined) {
      out.push(def);
      continue;
    }
    const abs = locate(def, def.code.module, dirs);
    const file = display(abs);
    const impl = checkCodeModule(await importModule(def, abs, file), file);
    out.push({
      ...def,
      queries: withCodeQueries(def, impl, file),
      code: { ...def.code, loaded: { file, impl } },
    });
  }
  return out;
}

function locate(def: SourceDef, module: string, dirs: readonly string[]): string {
  const candidates = path.isAbsolute(module) ? [module] : dirs.map((d) => path.resolve(d, module));
  const found = candidates.find((c) => existsSync(c));
  if (found !== undefined) return found;
  throw componentError(
    def.origin,
    "code.module",
    `${module} not found (looked for ${candidates.map(display).join(", ")}); a relative path is read from the source file's folder`,
  );
}

async function importModule(def: SourceDef, abs: string, file: string): Promise<unknown> {
  try {
    return (await import(pathToFileURL(abs).href)) as unknown;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Plain Node 20 cannot import TypeScript; the services run under tsx, which can.
    const hint =
      e?.code === "ERR_UNKNOWN_FILE_EXTENSION"
        ? "; run the service under tsx (node --import tsx), as make up does, or point code.module at a .js/.mjs build"
        : "";
    throw componentError(
      def.origin,
      "code.module",
      `${file} failed to load: ${e instanceof Error ? e.message : String(err)}${hint}`,
    );
  }
}

// The fetcher, invoke's checks and the docs list a source's queries from one map; code queries
// take their place in it with the manager's body limit and format (they have no template).
function withCodeQueries(def: SourceDef, impl: CodeSource, file: string): ReadonlyMap<string, QueryDef> {
  const queries = new Map(def.queries);
  for (const name of Object.keys(impl.queries)) {
    if (queries.has(name))
      throw componentError(
        def.origin,
        `queries.${name}`,
        `is declared here and also implemented by ${file}; keep one of them`,
      );
    queries.set(name, {
      name,
      method: "GET",
      path: compileTemplate("/", `${file}: queries.${name}`),
      params: {},
      headers: {},
      body: null,
      paginate: null,
      extract: [],
      format: "auto",
    });
  }
  return queries;
}

function display(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel.startsWith("..") || path.isAbsolute(rel) ? abs : rel;
}
