// The NATS users in the kustomize overlays: the generated auth.conf is current, the rendered NATS
// config (nats.conf including auth.conf) is one nats-server accepts with the Secret's passwords in
// its environment, and every workload reads exactly its own key of machina-nats-users: NATS all of
// them, each service its own as its own user, the bootstrap Job the admin's.
/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are untyped YAML */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { NATS_USERS, SERVICES, passwordEnv } from "@machina/subjects";
import { NATS_SERVER_BIN } from "../support/own-nats";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SECRET = "machina-nats-users";

function run(cmd: string, args: string[], env?: Record<string, string>) {
  return spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20, env: env ?? process.env });
}

const secretEnv = (c: any) =>
  new Map<string, string>(
    (c.env ?? [])
      .filter((e: any) => e.valueFrom?.secretKeyRef?.name === SECRET)
      .map((e: any) => [e.name, e.valueFrom.secretKeyRef.key]),
  );
const plainEnv = (c: any, name: string) => (c.env ?? []).find((e: any) => e.name === name)?.value;

describe("NATS users in deploy/k8s", () => {
  const rendered = new Map<string, any[]>();
  before(() => {
    const k = run("bash", ["test/harness/kustomize.sh"]);
    assert.equal(k.status, 0, k.stderr);
    for (const overlay of ["dev", "prod"]) {
      const r = run(k.stdout.trim(), ["build", path.join(ROOT, "deploy/k8s/overlays", overlay)]);
      assert.equal(r.status, 0, r.stderr);
      rendered.set(
        overlay,
        parseAllDocuments(r.stdout).map((d) => d.toJS()),
      );
    }
  });

  it("auth.conf is what libs/subjects generates (make docs)", () => {
    const r = run(process.execPath, [
      "--import",
      "tsx",
      "tools/nats-admin.ts",
      "auth-config",
      "--out",
      "deploy/k8s/base/nats/auth.conf",
      "--check",
    ]);
    assert.equal(r.status, 0, r.stderr);
  });

  for (const overlay of ["dev", "prod"]) {
    it(`${overlay}: nats-server accepts the rendered config with the users' passwords in its environment`, () => {
      const cm = rendered
        .get(overlay)!
        .find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("machina-nats-config"));
      assert.ok(cm.data["auth.conf"], "auth.conf is in the NATS ConfigMap");
      assert.match(cm.data["nats.conf"], /^include "auth\.conf"$/m);
      const dir = mkdtempSync(path.join(tmpdir(), "machina-k8s-nats-"));
      for (const [k, v] of Object.entries(cm.data as Record<string, string>)) writeFileSync(path.join(dir, k), v);
      const env = {
        PATH: process.env.PATH ?? "",
        POD_NAME: "machina-nats-0",
        ...Object.fromEntries(NATS_USERS.map((u) => [passwordEnv(u), `p${u}0123456789abcdef`])),
      };
      const ok = run(NATS_SERVER_BIN, ["-c", path.join(dir, "nats.conf"), "-t"], env);
      assert.equal(ok.status, 0, `${ok.stdout}${ok.stderr}`);
      // A password the Secret lacks stops the server, naming it.
      const missing = { ...env } as Record<string, string>;
      delete missing[passwordEnv("compute")];
      const bad = run(NATS_SERVER_BIN, ["-c", path.join(dir, "nats.conf"), "-t"], missing);
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /NATS_PASSWORD_COMPUTE/);
    });

    it(`${overlay}: NATS reads every user's key, each service its own as its own user, the Job the admin's`, () => {
      const objs = rendered.get(overlay)!;
      const nats = objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "machina-nats");
      assert.deepEqual(
        Object.fromEntries(secretEnv(nats.spec.template.spec.containers[0])),
        Object.fromEntries(NATS_USERS.map((u) => [passwordEnv(u), u])),
      );
      for (const s of SERVICES) {
        const d = objs.find((o) => o.kind === "Deployment" && o.metadata.name === `machina-${s}`);
        const c = d.spec.template.spec.containers[0];
        assert.equal(plainEnv(c, "MACHINA_NATS_USER"), s, `${s}'s user`);
        assert.deepEqual(
          Object.fromEntries(secretEnv(c)),
          { MACHINA_NATS_PASS: s },
          `${s} reads only its own password`,
        );
      }
      const job = objs.find((o) => o.kind === "Job" && o.metadata.name === "machina-nats-bootstrap");
      const jc = job.spec.template.spec.containers[0];
      assert.equal(plainEnv(jc, "MACHINA_NATS_USER"), "admin");
      assert.deepEqual(Object.fromEntries(secretEnv(jc)), { MACHINA_NATS_PASS: "admin" });
      assert.deepEqual(jc.args, ["bootstrap"]);
      assert.match(jc.image, /^machina\/admin:\d/);
      const replicas = plainEnv(jc, "MACHINA_NATS_REPLICAS") ?? "1";
      assert.equal(replicas, overlay === "prod" ? "3" : "1", "the Job makes streams with the services' replica count");
    });
  }
});
