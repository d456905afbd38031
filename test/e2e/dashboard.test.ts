// The live dashboard in a real browser: vertex, compute and fetch run in-process against the real
// nats-server, vertex serves the page on its dashboard port (reading the mesh over NATS), and headless Chromium (Debian's
// package, installed by test/harness/chromium.sh) opens the page. Requests, consumer backlog and
// dead letters are made while it watches, so the test fails unless the numbers on the page move.
// The screenshot goes to test-output/dashboard.png.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { computeService } from "@machina/compute";
import type { ComputeConfig } from "@machina/compute";
import { fetchService } from "@machina/fetch";
import type { FetchConfig } from "@machina/fetch";
import { ensureDurable, startService } from "@machina/runtime";
import type { RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService } from "@machina/vertex";
import type { VertexConfig } from "@machina/vertex";
import { eventually } from "../support/eventually";
import { NATS_URL, emptyConfigDir, removeNetwork, uniquePrefix } from "../support/nats-env";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CHROMIUM_SH = path.join(ROOT, "test/harness/chromium.sh");
const SCREENSHOT = path.join(ROOT, "test-output/dashboard.png");
const prefix = uniquePrefix("dash");
const names = meshNames(prefix);
const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
};
// A consumer nobody pulls from, so what the test publishes shows as lag.
const IDLE_DURABLE = "dashboard-idle";

/** A config root with one rate-limited source, so fetch.quota has windows to report; nothing calls its upstream. */
function fetchConfigDir(): string {
  const dir = emptyConfigDir();
  const sources = path.join(dir, "default", "fetch", "sources");
  mkdirSync(sources, { recursive: true });
  copyFileSync(path.join(ROOT, "config/default/fetch/sources/sitestats.yaml"), path.join(sources, "sitestats.yaml"));
  return dir;
}

/** The browser and its flags, from the one script that installs it. */
function chromiumLaunch(): { executablePath: string; args: string[] } {
  const ask = (what: string) => {
    const r = spawnSync("bash", [CHROMIUM_SH, what], { encoding: "utf8" });
    assert.equal(r.status, 0, `${CHROMIUM_SH} ${what} failed: ${r.stderr}`);
    return r.stdout.trim().split("\n");
  };
  const [executablePath] = ask("path");
  assert.ok(existsSync(executablePath), `${executablePath} missing: run bash test/harness/chromium.sh install`);
  // Playwright starts headless itself (headless: true) and refuses a --user-data-dir in args.
  return { executablePath, args: ask("flags").filter((f) => f !== "--headless") };
}

let nc: NatsConnection;
let vertex: RunningService<VertexConfig> | undefined;
let compute: RunningService<ComputeConfig> | undefined;
let fetcher: RunningService<FetchConfig> | undefined;
// The port vertex's own dashboard listens on (vertex.dashboard.port): a free one, found first.
let dashboardPort = 0;
let browser: BrowserContext | undefined;
let profile: string | undefined;
let load: NodeJS.Timeout | undefined;
let page: Page;
const pageErrors: string[] = [];

const text = (id: string) => page.locator(`#${id}`).innerText();
const number = async (id: string) => Number(await text(id));

describe("dashboard page in headless Chromium", { timeout: 180_000 }, () => {
  before(async () => {
    nc = await connect({ servers: NATS_URL });
    dashboardPort = await freePort();
    vertex = await startService(vertexService, {
      handleSignals: false,
      configDir: emptyConfigDir(),
      env: {
        ...env,
        MACHINA_VERTEX_DASHBOARD_PORT: String(dashboardPort),
        MACHINA_VERTEX_DASHBOARD_INTERVAL_MS: "500",
      },
    });
    compute = await startService(computeService, { handleSignals: false, configDir: emptyConfigDir(), env });
    fetcher = await startService(fetchService, {
      handleSignals: false,
      configDir: fetchConfigDir(),
      env: { ...env, SITESTATS_API_KEY: "unused" },
    });

    const jsm = await jetstreamManager(nc);
    await ensureDurable(jsm, names.streams.STORE, IDLE_DURABLE, names.task.store("website"));
    const js = jetstream(nc);
    await js.publish(names.dlq("STORE"), "a dead letter for the DLQ chart");
    // Traffic while the page watches: cache-stats answers, unknown computations fail, and a
    // STORE message now and then piles up behind the idle consumer.
    let tick = 0;
    load = setInterval(() => {
      tick++;
      const subject = tick % 10 === 0 ? names.computeGet("no_such_computation") : names.computeCache("stats");
      nc.request(subject, "{}", { timeout: 5_000 }).catch(() => undefined);
      if (tick % 10 === 5) js.publish(names.task.store("website"), `{"n":${tick}}`).catch(() => undefined);
    }, 50);

    profile = mkdtempSync(path.join(tmpdir(), "machina-chromium-"));
    browser = await chromium.launchPersistentContext(profile, {
      ...chromiumLaunch(),
      headless: true,
      viewport: { width: 1280, height: 1100 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on("pageerror", (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
    });
  });

  after(async () => {
    clearInterval(load);
    await browser?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await fetcher?.stop();
    await compute?.stop();
    await vertex?.stop();
    await removeNetwork(nc, names).catch(() => undefined);
    await nc?.close();
  });

  it("serves uPlot from the installed package, not a copy or a CDN", async () => {
    const base = `http://127.0.0.1:${dashboardPort}`;
    const uplotDir = path.dirname(createRequire(import.meta.resolve("@machina/vertex")).resolve("uplot/package.json"));
    const js = await fetch(`${base}/uplot.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    assert.deepEqual(Buffer.from(await js.arrayBuffer()), readFileSync(path.join(uplotDir, "dist/uPlot.iife.min.js")));
    const css = await fetch(`${base}/uplot.css`);
    assert.equal(css.status, 200);
    const html = await (await fetch(`${base}/`)).text();
    assert.doesNotMatch(html, /src="https?:|href="https?:/, "the page loads nothing from another host");
    assert.equal((await fetch(`${base}/nothing-here`)).status, 404);
  });

  it("updates live: the snapshot counter and the request count change", async () => {
    await page.goto(`http://127.0.0.1:${dashboardPort}/`);
    await eventually("a first snapshot on the page", async () => (await number("snapshots")) >= 1 || undefined, 15_000);
    const firstSnapshots = await number("snapshots");
    const firstRequests = await number("total-requests");
    const firstUpdated = await page.locator("#updated").getAttribute("datetime");
    await eventually(
      "the snapshot counter and the request count to grow",
      async () =>
        ((await number("snapshots")) >= firstSnapshots + 2 && (await number("total-requests")) > firstRequests) ||
        undefined,
      20_000,
    );
    assert.notEqual(await page.locator("#updated").getAttribute("datetime"), firstUpdated);
    assert.equal(await text("connection"), "live");
  });

  it("shows nodes, endpoints, lag and the DLQ, and draws the charts", async () => {
    // Compute's first heartbeat and the first STORE messages arrive within a few seconds.
    await eventually(
      "vertex and compute in the nodes table, lag behind the idle consumer, a dead letter",
      async () => {
        const nodes = await page.locator("#nodes tbody").innerText();
        const lagRow = page.locator("#lag tbody tr", { hasText: IDLE_DURABLE });
        const pending = (await lagRow.count()) === 1 ? Number(await lagRow.locator("td").nth(2).innerText()) : 0;
        const ok =
          nodes.includes("vertex") && nodes.includes("compute") && pending > 0 && (await number("dlq-size")) >= 1;
        return ok || undefined;
      },
      30_000,
    );
    const endpoints = await page.locator("#endpoints tbody").innerText();
    assert.match(endpoints, /compute\s+cache-stats/);
    assert.match(endpoints, /vertex\s+nodes/);
    // sitestats' two windows, 1 s rolling and 1 d on the clock, as fetch.quota reports them.
    const quotas = await page.locator("#quotas tbody").innerText();
    assert.match(quotas, /sitestats\s+1 s\s+rolling\s+0\s+10\s/);
    assert.match(quotas, /sitestats\s+1 d 0 h\s+clock\s+0\s+5000\s/);
    // Four uPlot charts, each drawn on a canvas with a series per service or consumer.
    assert.equal(await page.locator(".uplot").count(), 4);
    assert.ok((await page.locator(".uplot canvas").count()) >= 4);
    assert.ok(
      await page
        .locator("#chart-throughput .u-legend")
        .innerText()
        .then((t) => t.includes("compute")),
    );
    assert.deepEqual(pageErrors, []);

    // A few seconds more of history, so the screenshot shows lines rather than points.
    await eventually("a dozen snapshots", async () => (await number("snapshots")) >= 12 || undefined, 20_000);
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000, `${SCREENSHOT} looks empty`);
  });
});

/** A port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
