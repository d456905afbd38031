import path from "node:path";
import { fileURLToPath } from "node:url";
import convict from "convict";
import { ConfigError } from "./config-error";
import { readLayer } from "./config-files";
import { envName, getPath, leafPaths, setPath } from "./env-names";

/** Where config is read from. */
export interface ConfigSourceOptions {
  /** Config root holding `default/` and `<mode>/`. Default MACHINA_CONFIG_DIR or the repo's `config/`. */
  configDir?: string;
  /** Mode folder layered over `default/`. Default MACHINA_MODE or `default`. */
  mode?: string;
  /** Environment to read overrides from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** A validated process config plus where each value came from. */
export interface LoadedConfig<T> {
  /** The validated values. */
  values: T;
  /** Which layer a key's value came from: `env NAME`, a file path, or `default`. */
  origin(key: string): string;
  /** The mode folder that was layered over default. */
  mode: string;
  /** The config root used. */
  configDir: string;
}

/** The repo's own `config/` folder. */
export const DEFAULT_CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../config");

/** Resolves config root and mode from options and env. */
export function resolveConfigSource(opts: ConfigSourceOptions = {}): {
  configDir: string;
  mode: string;
  env: NodeJS.ProcessEnv;
} {
  const env = opts.env ?? process.env;
  return {
    configDir: opts.configDir ?? env.MACHINA_CONFIG_DIR ?? DEFAULT_CONFIG_DIR,
    mode: opts.mode ?? env.MACHINA_MODE ?? "default",
    env,
  };
}

/**
 * Loads a service's process config: schema default ← config/default/{common,<service>} ←
 * config/<mode>/{common,<service>} ← env (`MACHINA_<KEY>` for every service, then
 * `MACHINA_<SERVICE>_<KEY>`), validated strictly; errors name the key and its file or env var.
 */
export function loadProcessConfig<T>(
  service: string,
  schema: convict.Schema<T>,
  opts: ConfigSourceOptions = {},
): LoadedConfig<T> {
  const { configDir, mode, env } = resolveConfigSource(opts);
  const origins = new Map<string, string>();
  const merged: Record<string, unknown> = {};
  const folders = mode === "default" ? ["default"] : ["default", mode];

  for (const folder of folders) {
    for (const base of ["common", service]) {
      for (const file of readLayer(configDir, folder, base)) {
        checkStrict(service, schema, file.data, file.origin);
        for (const leaf of leafPaths(file.data)) {
          setPath(merged, leaf, getPath(file.data, leaf));
          origins.set(leaf, file.origin);
        }
      }
    }
  }

  const conf = convict(schema);
  const schemaLeaves = leafPaths(conf.getProperties());
  for (const prefix of ["MACHINA", `MACHINA_${service.toUpperCase()}`]) {
    for (const leaf of schemaLeaves) {
      const name = envName(prefix, leaf);
      const raw = env[name];
      if (raw !== undefined) {
        setPath(merged, leaf, raw);
        origins.set(leaf, `env ${name}`);
      }
    }
  }

  try {
    conf.load(merged);
    conf.validate({ allowed: "strict" });
  } catch (err) {
    throw explain(err as Error, origins);
  }
  return {
    values: conf.getProperties() as T,
    origin: (key) => origins.get(key) ?? "default",
    mode,
    configDir,
  };
}

// Validating each file on its own is what lets an unknown key name its file.
function checkStrict<T>(
  service: string,
  schema: convict.Schema<T>,
  data: Record<string, unknown>,
  origin: string,
): void {
  const conf = convict(schema);
  try {
    conf.load(data);
    conf.validate({ allowed: "strict" });
  } catch (err) {
    const first = String((err as Error).message).split("\n")[0];
    throw new ConfigError(origin, "", `${first} (checked against the ${service} schema)`);
  }
}

function explain(err: Error, origins: Map<string, string>): ConfigError {
  const first = String(err.message).split("\n")[0];
  const m = /^([\w.]+):/.exec(first);
  const key = m ? m[1] : "";
  return new ConfigError(origins.get(key) ?? "config", "", first);
}
