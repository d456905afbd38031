// What a task needs of the replica that runs it, as the `Machina-Resources` header says it:
// `ram=2G, cpu=1.5, gpu=1, storage=10G, network=50M` (any subset, `,` or `;` between parts).
import { parseSize, sizeProblem } from "@machina/config";
import { MachinaError } from "@machina/wire";

/** Header a durable message carries to say what running it needs; without it a task needs nothing. */
export const RESOURCES_HEADER = "Machina-Resources";

/** The resources a task may ask for: CPU cores, RAM bytes, GPUs, storage bytes, network bytes/s. */
export const RESOURCE_KINDS = ["cpu", "ram", "gpu", "storage", "network"] as const;

/** One of {@link RESOURCE_KINDS}. */
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** An amount of every kind (cores, bytes, GPUs, bytes, bytes per second). */
export type Resources = Record<ResourceKind, number>;

const KINDS: ReadonlySet<string> = new Set(RESOURCE_KINDS);

/** No resources at all. */
export function noResources(): Resources {
  return { cpu: 0, ram: 0, gpu: 0, storage: 0, network: 0 };
}

/**
 * Parses one amount of `kind`: cpu as cores (`1.5`) or millicores (`500m`), gpu as a whole
 * count, the others as binary sizes (`512M`, `2G`; network per second). Null when it is valid,
 * else what to write.
 */
export function amountProblem(kind: ResourceKind, text: string): string | null {
  const t = text.trim();
  if (kind === "cpu") {
    return /^\d+(\.\d+)?$|^\d+m$/.test(t) ? null : `cpu: "${text}" is not cores (e.g. 2, 0.5) or millicores (500m)`;
  }
  if (kind === "gpu") return /^\d+$/.test(t) ? null : `gpu: "${text}" is not a whole number of GPUs`;
  const problem = sizeProblem(t);
  return problem === null ? null : `${kind}: ${problem}`;
}

/** The amount `text` of `kind` means (see {@link amountProblem}); throws BAD_REQUEST naming `where`. */
export function parseAmount(kind: ResourceKind, text: string, where: string): number {
  const problem = amountProblem(kind, text);
  if (problem !== null)
    throw new MachinaError("BAD_REQUEST", `${where}: ${problem}`, {
      retryable: false,
      details: { field: where, kind, value: text },
    });
  const t = text.trim();
  if (kind === "cpu") return t.endsWith("m") ? Number(t.slice(0, -1)) / 1000 : Number(t);
  if (kind === "gpu") return Number(t);
  return parseSize(t);
}

/**
 * The needs a `Machina-Resources` value names. Throws BAD_REQUEST naming the header and the part
 * at fault: an unknown kind (with the known ones), a kind given twice, an amount that does not parse.
 */
export function parseResources(text: string): Partial<Resources> {
  const out: Partial<Resources> = {};
  for (const raw of text.split(/[;,]/)) {
    const part = raw.trim();
    if (part === "") continue;
    const eq = part.indexOf("=");
    const kind = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const bad = (message: string): never => {
      throw new MachinaError("BAD_REQUEST", `${RESOURCES_HEADER}: ${message}`, {
        retryable: false,
        details: { header: RESOURCES_HEADER, part, known: [...RESOURCE_KINDS] },
      });
    };
    if (eq < 0) bad(`"${part}" is not kind=amount (e.g. ram=2G, cpu=1)`);
    if (!KINDS.has(kind)) bad(`unknown resource "${kind}"; known: ${RESOURCE_KINDS.join(", ")}`);
    const k = kind as ResourceKind;
    if (out[k] !== undefined) bad(`${k} is given twice`);
    out[k] = parseAmount(k, part.slice(eq + 1), RESOURCES_HEADER);
  }
  return out;
}

/** The header value for `needs`, in a form {@link parseResources} reads back (sizes in bytes). */
export function formatResources(needs: Partial<Resources>): string {
  return RESOURCE_KINDS.filter((k) => needs[k] !== undefined)
    .map((k) => `${k}=${needs[k]}`)
    .join(", ");
}
