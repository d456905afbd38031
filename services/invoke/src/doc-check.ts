import { MachinaError } from "@machina/wire";

/** Throws BAD_REQUEST naming the file and key when a doc has keys outside `allowed`. */
export function onlyKeys(origin: string, doc: Record<string, unknown>, allowed: string[], at = ""): void {
  for (const k of Object.keys(doc)) {
    if (!allowed.includes(k)) {
      throw new MachinaError("BAD_REQUEST", `${origin}: ${at}${k}: unknown key (expected one of ${allowed.join(", ")})`);
    }
  }
}

/** A config problem at `key` of `origin`. */
export function configError(origin: string, key: string, problem: string): MachinaError {
  return new MachinaError("BAD_REQUEST", `${origin}: ${key}: ${problem}`);
}
