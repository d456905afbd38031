/** Bad configuration: names the key path and the file (or env var) it came from. */
export class ConfigError extends Error {
  readonly key: string;
  readonly origin: string;

  constructor(origin: string, key: string, problem: string) {
    super(`${origin}${key ? `: ${key}` : ""}: ${problem}`);
    this.name = "ConfigError";
    this.key = key;
    this.origin = origin;
  }
}
