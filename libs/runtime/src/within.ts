/**
 * `p`'s value, or `fallback` when it fails or takes longer than `ms`: systeminformation shells
 * out for some facts (GPUs, disks), and a slow probe must not hold up start-up.
 */
export async function within<T>(ms: number, p: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([p.catch(() => fallback), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
