import { startService } from "./service-host";
import type { ServiceSpec } from "./service-host";

/** Process entry point: starts the service or exits 1 with the reason (e.g. which config key is wrong). */
export function runMain<C>(spec: ServiceSpec<C>): void {
  startService(spec).catch((err: unknown) => {
    process.stderr.write(`${spec.name} failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
