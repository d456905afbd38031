import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { componentError, resolveConfigSource, type ConfigSourceOptions } from "@machina/config";
import { nameProblem } from "@machina/subjects";
import { defineComputation, type Computation } from "../computations/define";
import { checkCodeComputation } from "./check-module";

/** The folder under `config/<mode>/` holding code-defined computations, one module per computation. */
export const COMPUTATIONS_FOLDER = "compute/computations";

const MODULE_EXT = [".ts", ".mts", ".js", ".mjs"];

/**
 * Imports every module of `config/<mode>/compute/computations/` and then `config/default/…`'s
 * (a mode's file replaces default's of the same name) and makes each a computation named after
 * its file, its origin the file. A file name that breaks the name rule, a module that fails to
 * load or does not implement CodeComputation throws BAD_REQUEST naming the file, so the service
 * stops at start-up. Only files directly in the folder count: helpers may sit in subfolders.
 */
export async function loadCodeComputations(opts: ConfigSourceOptions = {}): Promise<Computation[]> {
  const { configDir, mode } = resolveConfigSource(opts);
  const folders = mode === "default" ? ["default"] : [mode, "default"];
  const chosen = new Map<string, string>();
  for (const folder of folders) {
    const dir = path.join(configDir, folder, COMPUTATIONS_FOLDER);
    if (!existsSync(dir)) continue;
    const inFolder = new Map<string, string>();
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const ext = path.extname(entry.name);
      if (!entry.isFile() || !MODULE_EXT.includes(ext) || entry.name.endsWith(".d.ts")) continue;
      const name = path.basename(entry.name, ext);
      const abs = path.join(dir, entry.name);
      const twin = inFolder.get(name);
      if (twin !== undefined)
        throw componentError(display(abs), "", `${display(twin)} also defines computation "${name}"; keep one of them`);
      inFolder.set(name, abs);
    }
    for (const [name, abs] of inFolder) if (!chosen.has(name)) chosen.set(name, abs);
  }
  const out: Computation[] = [];
  for (const [name, abs] of [...chosen].sort(([a], [b]) => a.localeCompare(b))) {
    const file = display(abs);
    const problem = nameProblem(name);
    if (problem !== null) throw componentError(file, "", `the file name is the computation's name: ${problem}`);
    const spec = checkCodeComputation(await importModule(abs, file), file);
    out.push(defineComputation(name, spec, file));
  }
  return out;
}

async function importModule(abs: string, file: string): Promise<unknown> {
  try {
    return (await import(pathToFileURL(abs).href)) as unknown;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Plain Node 20 cannot import TypeScript; the services run under tsx, which can.
    const hint =
      e?.code === "ERR_UNKNOWN_FILE_EXTENSION"
        ? "; run the service under tsx (node --import tsx), as make up does, or write the module as .js/.mjs"
        : "";
    throw componentError(file, "", `failed to load: ${e instanceof Error ? e.message : String(err)}${hint}`);
  }
}

// Relative to the working directory when inside it (config/default/…), else absolute.
function display(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel.startsWith("..") || path.isAbsolute(rel) ? abs : rel;
}
