// Offline checks of deploy/: the images' build output and Dockerfile, and every kustomize overlay
// rendered and validated against the Kubernetes schemas (kubernetes-models) and the CRD subsets in
// deploy/k8s/crds-schemas, plus the rules of deploy/README.md (probes, resources, pinned images,
// one autoscaler per workload, every Secret documented).
/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are untyped YAML walked field by field */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as appsV1 from "kubernetes-models/apps/v1";
import { parseAllDocuments } from "yaml";
import { SERVICES } from "@machina/subjects";

const ROOT = path.resolve(import.meta.dirname, "../..");
const K8S = path.join(ROOT, "deploy/k8s");
const DOCKERFILE = readFileSync(path.join(ROOT, "deploy/docker/Dockerfile"), "utf8");
const README = readFileSync(path.join(ROOT, "deploy/README.md"), "utf8");
// Probe ports: services/*/src/*-service.ts httpPort.
const PORTS: Record<string, number> = {
  fetch: 9301,
  invoke: 9302,
  aggregate: 9303,
  data: 9304,
  compute: 9305,
  vertex: 9306,
};

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: any;
};

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

/** The Dockerfile's stages: name → its lines. */
function stages(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of DOCKERFILE.split("\n")) {
    const m = /^FROM\s+\S+\s+AS\s+(\S+)/i.exec(line);
    if (m) out.set(m[1], (current = []));
    else if (current && line.trim() && !line.startsWith("#")) current.push(line.trim());
  }
  return out;
}

describe("images: build output and Dockerfile", () => {
  let out = "";
  before(() => {
    out = mkdtempSync(path.join(tmpdir(), "machina-build-"));
    run("node", ["tools/build.mjs", "--out", out]);
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it("has a target per service that copies an entry file the build emitted, with its port and a HEALTHCHECK", () => {
    const st = stages();
    for (const s of SERVICES) {
      const lines = st.get(s);
      assert.ok(lines, `Dockerfile has no target ${s}`);
      assert.match(lines[0], /^COPY --from=build \/src\/dist\/([a-z]+)\/ \/app\/$/);
      assert.equal(/\/dist\/([a-z]+)\//.exec(lines[0])?.[1], s, `target ${s} copies another service's bundle`);
      assert.ok(existsSync(path.join(out, s, "main.mjs")), `build output lacks ${s}/main.mjs`);
      assert.ok(lines.includes(`ENV MACHINA_HTTP_PORT=${PORTS[s]}`), `target ${s}: probe port ${PORTS[s]}`);
      assert.ok(lines.includes(`EXPOSE ${PORTS[s]}`), `target ${s}: EXPOSE ${PORTS[s]}`);
      assert.ok(
        lines.some((l) => /^HEALTHCHECK .*CMD \["node", "\/app\/healthcheck.mjs"\]$/.test(l)),
        `target ${s}: HEALTHCHECK`,
      );
    }
    const runtime = st.get("runtime") ?? [];
    assert.ok(runtime.includes('CMD ["node", "--enable-source-maps", "--max-semi-space-size=32", "/app/main.mjs"]'));
    // invoke alone runs with V8's default young generation (its peak RSS with a large ledger).
    for (const s of SERVICES) {
      const cmds = (st.get(s) ?? []).filter((l) => l.startsWith("CMD "));
      if (s === "invoke") assert.deepEqual(cmds, ['CMD ["node", "--enable-source-maps", "/app/main.mjs"]']);
      else assert.deepEqual(cmds, [], `target ${s} keeps the runtime stage's command`);
    }
    const user = runtime.find((l) => l.startsWith("USER "));
    assert.ok(user && !/^USER (0|root)\b/.test(user), `runtime stage runs as ${user ?? "root"}`);
    for (const copied of ["protos", "config"]) assert.ok(existsSync(path.join(out, copied)), `dist/${copied}`);
    // config modules are .js in the build, and the YAML names the .js
    const rankings = readFileSync(path.join(out, "config/default/fetch/sources/rankings.yaml"), "utf8");
    assert.match(rankings, /module: \.\/rankings\.js/);
    assert.ok(existsSync(path.join(out, "config/default/fetch/sources/rankings.js")));
    assert.ok(!existsSync(path.join(out, "config/default/compute/computations/traffic_score.ts")));
  });

  it("runs a bundle under plain node (no tsx) up to a healthy /healthz", async () => {
    const child = spawn(process.execPath, [path.join(out, "compute/main.mjs")], {
      env: {
        PATH: process.env.PATH,
        MACHINA_NATS_URL: process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222",
        MACHINA_MESH_PREFIX: "deploytest",
        MACHINA_HTTP_PORT: "0",
        MACHINA_CONFIG_DIR: path.join(out, "config"),
        MACHINA_PROTOS_DIR: path.join(out, "protos"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let text = "";
        const timer = setTimeout(() => reject(new Error(`no probe port within 20 s:\n${text}`)), 20_000);
        child.stdout.on("data", (b: Buffer) => {
          text += b.toString();
          const m = /"probePort":(\d+)/.exec(text);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
        child.stderr.on("data", (b: Buffer) => (text += b.toString()));
        child.on("exit", (code) => reject(new Error(`compute exited (${code}):\n${text}`)));
      });
      const status = await new Promise<number>((resolve, reject) =>
        get({ host: "127.0.0.1", port, path: "/healthz" }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on("error", reject),
      );
      assert.equal(status, 200);
      // the image's HEALTHCHECK script agrees
      run("node", ["deploy/docker/healthcheck.mjs", String(port)]);
    } finally {
      child.kill("SIGTERM");
    }
  });
});

// ---- kustomize -------------------------------------------------------------------------------

/** A small JSON Schema check (type, enum, required, properties, additionalProperties, items, minimum, pattern, minItems). */
function schemaErrors(schema: any, value: any, at = ""): string[] {
  const errs: string[] = [];
  if (schema.enum && !schema.enum.includes(value)) errs.push(`${at}: ${JSON.stringify(value)} not in ${schema.enum}`);
  const t = schema.type;
  const isObj = value !== null && typeof value === "object" && !Array.isArray(value);
  if (t === "object" && !isObj) return [...errs, `${at}: expected an object`];
  if (t === "array" && !Array.isArray(value)) return [...errs, `${at}: expected an array`];
  if (t === "string" && typeof value !== "string") errs.push(`${at}: expected a string, got ${JSON.stringify(value)}`);
  if (t === "integer" && !Number.isInteger(value)) errs.push(`${at}: expected an integer`);
  if (t === "boolean" && typeof value !== "boolean") errs.push(`${at}: expected a boolean`);
  if (schema.minimum !== undefined && typeof value === "number" && value < schema.minimum)
    errs.push(`${at}: below ${schema.minimum}`);
  if (schema.pattern && typeof value === "string" && !new RegExp(schema.pattern).test(value))
    errs.push(`${at}: ${value} !~ ${schema.pattern}`);
  if (isObj) {
    for (const r of schema.required ?? []) if (value[r] === undefined) errs.push(`${at}: ${r} is required`);
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties?.[k];
      if (sub) errs.push(...schemaErrors(sub, v, `${at}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${at}.${k}: unknown field`);
      else if (typeof schema.additionalProperties === "object")
        errs.push(...schemaErrors(schema.additionalProperties, v, `${at}.${k}`));
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems)
      errs.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.items) value.forEach((v, i) => errs.push(...schemaErrors(schema.items, v, `${at}[${i}]`)));
  }
  return errs;
}

const CRD_SCHEMAS: Record<string, any> = {
  "keda.sh/v1alpha1/ScaledObject": JSON.parse(
    readFileSync(path.join(K8S, "crds-schemas/scaledobject.keda.sh_v1alpha1.json"), "utf8"),
  ),
  "scylla.scylladb.com/v1/ScyllaCluster": JSON.parse(
    readFileSync(path.join(K8S, "crds-schemas/scyllacluster.scylla.scylladb.com_v1.json"), "utf8"),
  ),
};

async function validateObject(o: Obj): Promise<string[]> {
  const crd = CRD_SCHEMAS[`${o.apiVersion}/${o.kind}`];
  if (crd) {
    const errs = schemaErrors(crd, o, `${o.kind}/${o.metadata.name}`);
    const rules = crd["x-machina-trigger-metadata"];
    for (const [i, t] of (o.spec?.triggers ?? []).entries()) {
      const rule = rules?.[t.type];
      if (!rule) continue;
      for (const k of rule.required)
        if (t.metadata[k] === undefined) errs.push(`${o.metadata.name} trigger ${i}: ${k} missing`);
      for (const k of Object.keys(t.metadata))
        if (!rule.allowed.includes(k)) errs.push(`${o.metadata.name} trigger ${i}: unknown ${k}`);
    }
    return errs;
  }
  const mod = (o.apiVersion === "apps/v1"
    ? appsV1
    : await import(`kubernetes-models/${o.apiVersion}`)) as unknown as Record<
    string,
    new (d: unknown) => { validate(): void }
  >;
  const Model = mod[o.kind];
  if (!Model) return [`${o.apiVersion} ${o.kind}: no schema (add one under deploy/k8s/crds-schemas)`];
  try {
    new Model(o).validate();
    return [];
  } catch (err) {
    return [`${o.kind}/${o.metadata.name}: ${(err as Error).message}`];
  }
}

const podSpecOf = (o: Obj) => (["Deployment", "StatefulSet"].includes(o.kind) ? o.spec.template : undefined);

function ownChecks(objs: Obj[]): string[] {
  const errs: string[] = [];
  const services = new Set(objs.filter((o) => o.kind === "Service").map((o) => o.metadata.name));
  const scaled = new Map<string, string[]>();
  for (const o of objs) {
    const target =
      o.kind === "HorizontalPodAutoscaler"
        ? o.spec.scaleTargetRef.name
        : o.kind === "ScaledObject"
          ? o.spec.scaleTargetRef.name
          : "";
    if (target) scaled.set(target, [...(scaled.get(target) ?? []), `${o.kind}/${o.metadata.name}`]);
  }
  for (const [target, by] of scaled) {
    if (by.length > 1) errs.push(`${target} is scaled by ${by.join(" and ")}`);
    const w = objs.find((o) => o.kind === "Deployment" && o.metadata.name === target);
    if (!w) errs.push(`${by[0]} targets ${target}, which is not rendered`);
    else if (w.spec.replicas !== undefined) errs.push(`${target} sets replicas while ${by[0]} scales it`);
  }
  for (const o of objs) {
    if (o.kind === "PodDisruptionBudget" || o.kind === "Service") {
      const sel = o.kind === "Service" ? o.spec.selector : o.spec.selector.matchLabels;
      const pods = objs.filter(
        (w) => podSpecOf(w) && Object.entries(sel).every(([k, v]) => podSpecOf(w).metadata.labels?.[k] === v),
      );
      if (pods.length !== 1) errs.push(`${o.kind}/${o.metadata.name} selects ${pods.length} workloads`);
    }
    const tpl = podSpecOf(o);
    if (!tpl) continue;
    const name = `${o.kind}/${o.metadata.name}`;
    for (const [k, v] of Object.entries(o.spec.selector.matchLabels as Record<string, string>))
      if (tpl.metadata.labels?.[k] !== v) errs.push(`${name}: selector ${k}=${v} does not match the pod template`);
    for (const tsc of tpl.spec.topologySpreadConstraints ?? [])
      for (const [k, v] of Object.entries(tsc.labelSelector.matchLabels as Record<string, string>))
        if (tpl.metadata.labels?.[k] !== v)
          errs.push(`${name}: topology spread selector ${k}=${v} misses its own pods`);
    if (o.kind === "StatefulSet" && !services.has(o.spec.serviceName))
      errs.push(`${name}: serviceName ${o.spec.serviceName} not rendered`);
    if (
      o.kind === "Deployment" &&
      !objs.some((p) => p.kind === "PodDisruptionBudget" && p.metadata.name === o.metadata.name)
    )
      errs.push(`${name}: no PodDisruptionBudget`);
    for (const c of [...(tpl.spec.initContainers ?? []), ...tpl.spec.containers]) {
      const cn = `${name} container ${c.name}`;
      if (!c.livenessProbe || !c.readinessProbe) errs.push(`${cn}: needs liveness and readiness probes`);
      for (const k of ["requests", "limits"])
        for (const r of ["cpu", "memory"])
          if (c.resources?.[k]?.[r] === undefined) errs.push(`${cn}: resources.${k}.${r} missing`);
      const image: string = c.image ?? "";
      const tag = /^[^@]+:([^/:@]+)(@sha256:[0-9a-f]{64})?$/.exec(image)?.[1];
      if (!tag || tag === "latest" || !/\d/.test(tag))
        errs.push(`${cn}: image ${image} is not pinned to a version tag`);
      const envs = new Map((c.env ?? []).map((e: any) => [e.name, e]));
      for (const e of c.env ?? []) {
        // A Service this install renders, named by the env (NATS URL, Scylla hosts); operator-made ones allowed.
        for (const host of String(e.value ?? "").match(/machina-[a-z0-9-]+/g) ?? [])
          if (!services.has(host) && host !== "machina-scylla-client")
            errs.push(`${cn}: ${e.name} names ${host}, which no Service provides`);
      }
      const httpPort = c.ports?.find((p: any) => p.name === "http")?.containerPort;
      if (httpPort !== undefined && (envs.get("MACHINA_HTTP_PORT") as any)?.value !== String(httpPort))
        errs.push(`${cn}: MACHINA_HTTP_PORT does not match the http port ${httpPort}`);
      for (const m of c.volumeMounts ?? [])
        if (
          !(tpl.spec.volumes ?? []).some((v: any) => v.name === m.name) &&
          !(o.spec.volumeClaimTemplates ?? []).some((v: any) => v.metadata.name === m.name)
        )
          errs.push(`${cn}: mounts ${m.name}, which is no volume`);
    }
  }
  return errs;
}

/** Secret name → keys the rendered objects read (undefined key: the whole Secret via envFrom/volume). */
function secretRefs(objs: Obj[]): Map<string, Set<string | undefined>> {
  const refs = new Map<string, Set<string | undefined>>();
  const add = (n: string, k?: string) => refs.set(n, (refs.get(n) ?? new Set()).add(k));
  for (const o of objs) {
    const tpl = podSpecOf(o);
    if (!tpl) continue;
    for (const c of [...(tpl.spec.initContainers ?? []), ...tpl.spec.containers]) {
      for (const e of c.env ?? [])
        if (e.valueFrom?.secretKeyRef) add(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
      for (const e of c.envFrom ?? []) if (e.secretRef) add(e.secretRef.name);
    }
    for (const v of tpl.spec.volumes ?? []) if (v.secret) add(v.secret.secretName);
  }
  return refs;
}

describe("kustomize overlays", () => {
  const overlays = readdirSync(path.join(K8S, "overlays")).sort();
  const rendered = new Map<string, Obj[]>();
  before(() => {
    const kustomize = run("bash", ["test/harness/kustomize.sh"]).trim();
    for (const name of overlays) {
      const text = run(kustomize, ["build", path.join(K8S, "overlays", name)]);
      rendered.set(
        name,
        parseAllDocuments(text).map((d) => {
          assert.equal(d.errors.length, 0, `${name}: ${d.errors.join("; ")}`);
          return d.toJS() as Obj;
        }),
      );
    }
  });

  it("the ConfigMap copy of config/ is current (node deploy/k8s/sync-config.mjs)", () => {
    run("node", ["deploy/k8s/sync-config.mjs", "--check"]);
  });

  it("has dev, prod and the Scylla Operator variant", () => {
    for (const want of ["dev", "prod", "prod-scylla-operator"]) assert.ok(overlays.includes(want), want);
  });

  for (const name of ["dev", "prod", "prod-scylla-operator"]) {
    it(`${name}: every object validates against its schema`, async () => {
      const errs = (await Promise.all(rendered.get(name)!.map(validateObject))).flat();
      assert.deepEqual(errs, []);
    });

    it(`${name}: selectors, probes, resources, pinned images, one autoscaler per workload`, () => {
      assert.deepEqual(ownChecks(rendered.get(name)!), []);
    });

    it(`${name}: every Secret and key it reads is documented in deploy/README.md and none is rendered`, () => {
      const objs = rendered.get(name)!;
      assert.deepEqual(
        objs.filter((o) => o.kind === "Secret").map((o) => o.metadata.name),
        [],
      );
      const missing: string[] = [];
      for (const [secret, keys] of secretRefs(objs)) {
        const row = README.split("\n").find((l) => l.startsWith("|") && l.includes(`\`${secret}\``));
        if (!row) missing.push(secret);
        else for (const k of keys) if (k !== undefined && !row.includes(`\`${k}\``)) missing.push(`${secret}/${k}`);
      }
      assert.deepEqual(missing, []);
    });
  }

  it("dev runs one replica of everything and no autoscaler", () => {
    const objs = rendered.get("dev")!;
    for (const o of objs.filter((x) => podSpecOf(x))) assert.equal(o.spec.replicas, 1, `${o.kind}/${o.metadata.name}`);
    assert.deepEqual(
      objs.filter((o) => ["HorizontalPodAutoscaler", "ScaledObject"].includes(o.kind)),
      [],
    );
  });

  it("prod: 3 NATS servers routed to each other with lame duck, 3 Scylla, every service autoscaled", () => {
    const objs = rendered.get("prod")!;
    const nats = objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "machina-nats")!;
    assert.equal(nats.spec.replicas, 3);
    assert.deepEqual(nats.spec.template.spec.containers[0].lifecycle.preStop.exec.command.slice(0, 2), [
      "nats-server",
      "--signal",
    ]);
    const conf = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("machina-nats-config")) as any;
    for (let i = 0; i < 3; i++)
      assert.ok(conf.data["nats.conf"].includes(`machina-nats-${i}.machina-nats-headless:6222`));
    assert.equal(objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "machina-scylla")!.spec.replicas, 3);
    const by = (kind: string) =>
      objs
        .filter((o) => o.kind === kind)
        .map((o) => o.spec.scaleTargetRef.name)
        .sort();
    assert.deepEqual(by("HorizontalPodAutoscaler"), ["machina-compute", "machina-vertex"]);
    assert.deepEqual(by("ScaledObject"), ["machina-aggregate", "machina-data", "machina-fetch", "machina-invoke"]);
    // fetch scales on every source's own consumer (config/default/fetch/sources)
    const sources = readdirSync(path.join(ROOT, "config/default/fetch/sources"))
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => `fetch-${f.replace(/\.yaml$/, "")}`)
      .sort();
    const fetch = objs.find((o) => o.kind === "ScaledObject" && o.metadata.name === "machina-fetch")!;
    assert.deepEqual(fetch.spec.triggers.map((t: any) => t.metadata.consumer).sort(), sources);
  });
});
