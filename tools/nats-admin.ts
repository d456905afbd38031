// NATS administration of one mesh: the users and permissions nats-server runs with, and the
// objects several services share, created by the admin user.
//
//   auth-config [--prefix P] [--out FILE] [--check]
//       Writes the nats-server `authorization { users = [...] }` block of mesh P (default: the
//       mesh.prefix setting, `machina`): user `admin` without limits and one user per service
//       with the allow lists libs/subjects derives (permissions.ts). Passwords are `$NATS_PASSWORD_<USER>`
//       references the server resolves from its environment, so the file holds no secret.
//       --check: exit 1 when FILE differs from what would be written (a stale generated copy).
//   bootstrap
//       Connects as configured (MACHINA_NATS_URL, MACHINA_NATS_USER=admin, MACHINA_NATS_PASS or
//       MACHINA_NATS_PASS_FILE, MACHINA_NATS_TLS_*, MACHINA_NATS_REPLICAS, MACHINA_MESH_PREFIX) and
//       creates or updates the pipeline streams and the config chain's bucket. `make up` runs it
//       before the services, the k8s overlays as the machina-nats-bootstrap Job.
//   permissions [--prefix P] [--service S]
//       Prints the permissions as JSON (every service's, or one).
//   secrets --dir DIR
//       Creates DIR/<user> (mode 0600) with a random password for every user that has none yet
//       (and checks the ones there, see passwordProblem); never prints one. `make up` keeps its passwords in .machina/up/secrets/nats.
//
// Usage: node --import tsx tools/nats-admin.ts <command> [options]
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { baseSchema, loadProcessConfig } from "@machina/config";
import type { BaseConfig } from "@machina/config";
import { bootstrapMesh } from "@machina/runtime";
import {
  NATS_USERS,
  SERVICES,
  passwordProblem,
  meshNames,
  meshPermissions,
  renderAuthorization,
  servicePermissions,
} from "@machina/subjects";
import type { ServiceName } from "@machina/subjects";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    prefix: { type: "string" },
    out: { type: "string" },
    check: { type: "boolean", default: false },
    service: { type: "string" },
    dir: { type: "string" },
  },
});

function config(): BaseConfig {
  return loadProcessConfig<BaseConfig>("admin", baseSchema({ httpPort: 0 }) as never).values;
}

const prefix = () => values.prefix ?? config().mesh.prefix;

async function bootstrap(): Promise<void> {
  const cfg = config();
  const done = await bootstrapMesh(cfg, (why) => process.stderr.write(`${why}\n`));
  process.stdout.write(
    `mesh ${cfg.mesh.prefix}: streams ${done.streams.join(", ")} and bucket ${done.bucket} ready ` +
      `(replicas ${cfg.nats.replicas}) on ${cfg.nats.url}\n`,
  );
}

function authConfig(): void {
  const text = renderAuthorization(meshNames(prefix()));
  if (values.check) {
    if (values.out === undefined) throw new Error("--check needs --out FILE");
    let have = "";
    try {
      have = readFileSync(values.out, "utf8");
    } catch {
      // a missing file is stale too
    }
    if (have !== text) {
      process.stderr.write(
        `${values.out} is stale: rerun node --import tsx tools/nats-admin.ts auth-config --out ${values.out}\n`,
      );
      process.exit(1);
    }
    return;
  }
  if (values.out === undefined) process.stdout.write(text);
  else writeFileSync(values.out, text);
}

function permissions(): void {
  const names = meshNames(prefix());
  const s = values.service;
  if (s !== undefined && !(SERVICES as readonly string[]).includes(s))
    throw new Error(`--service ${s}: not a service; one of ${SERVICES.join(", ")}`);
  const out = s === undefined ? meshPermissions(names) : servicePermissions(names, s as ServiceName);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

function secrets(): void {
  const dir = values.dir;
  if (dir === undefined) throw new Error("secrets needs --dir DIR");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const made: string[] = [];
  for (const user of NATS_USERS) {
    const file = path.join(dir, user);
    if (existsSync(file)) {
      const problem = passwordProblem(readFileSync(file, "utf8").trim());
      if (problem !== null) throw new Error(`${file}: ${problem}`);
      continue;
    }
    // A letter first: nats-server parses the password's $VAR value as config.
    writeFileSync(file, `p${randomBytes(24).toString("hex")}\n`, { mode: 0o600 });
    made.push(user);
  }
  process.stdout.write(
    made.length > 0 ? `new passwords for ${made.join(", ")} in ${dir}\n` : `passwords of every user kept in ${dir}\n`,
  );
}

const commands: Record<string, () => void | Promise<void>> = {
  "auth-config": authConfig,
  bootstrap,
  permissions,
  secrets,
};

const run = commands[positionals[0] ?? ""];
if (run === undefined) {
  process.stderr.write(`usage: nats-admin <${Object.keys(commands).join("|")}> [options] (see tools/nats-admin.ts)\n`);
  process.exit(2);
}
Promise.resolve()
  .then(run)
  .catch((err: unknown) => {
    process.stderr.write(`nats-admin ${positionals[0]}: ${(err as Error).message}\n`);
    process.exit(1);
  });
