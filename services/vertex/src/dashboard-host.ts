import type { ServiceContext } from "@machina/runtime";
import { natsSnapshot, startDashboard } from "./dashboard/index";
import type { RunningDashboard } from "./dashboard/index";

/**
 * Starts vertex's dashboard page. A port already taken (another vertex on this host, or a test
 * network) leaves vertex running without the page, saying so: the registry and the DLQ desk
 * matter more than the page.
 */
export async function openDashboard<C>(
  ctx: ServiceContext<C>,
  opts: { port: number; host: string; intervalMs: number },
): Promise<RunningDashboard | undefined> {
  try {
    const dashboard = await startDashboard({
      snapshot: natsSnapshot(ctx.nc, ctx.names),
      host: opts.host,
      port: opts.port,
      intervalMs: opts.intervalMs,
      title: ctx.names.prefix,
    });
    ctx.log.info({ url: `http://${opts.host}:${dashboard.port}/` }, "dashboard serving");
    return dashboard;
  } catch (err) {
    ctx.log.warn({ err, port: opts.port }, "dashboard not started; vertex runs without the page");
    return undefined;
  }
}
