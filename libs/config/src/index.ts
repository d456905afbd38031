export { ConfigError } from "./config-error";
export { parseConfigFile, readLayer } from "./config-files";
export type { ConfigFile } from "./config-files";
export { envName, screamingSnake, leafPaths, getPath, setPath } from "./env-names";
export { loadProcessConfig, resolveConfigSource, DEFAULT_CONFIG_DIR } from "./process-config";
export type { ConfigSourceOptions, LoadedConfig } from "./process-config";
export { loadComponents, deepMerge } from "./components";
export type { ComponentDoc } from "./components";
export { baseSchema } from "./base-schema";
export type { BaseConfig, TlsSettings } from "./base-schema";
export { parseDuration, formatDuration, durationProblem, DURATION_EXAMPLES } from "./duration";
export { parseSize, sizeProblem, formatSize, SIZE_EXAMPLES } from "./size";
export { describeValue, isPlainObject } from "@machina/protos";
export {
  field,
  defineKind,
  parseDocument,
  componentError,
  formatPath,
  problemsOf,
  renderComponentDocs,
  closestWord,
} from "./schema";
export type { DurationOptions, ComponentKind, ComponentValue, Component, KindSpec, Problem } from "./schema";
