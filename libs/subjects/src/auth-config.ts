import type { MeshNames } from "./names";
import { ADMIN_USER, NATS_USERS, servicePermissions } from "./permissions";
import type { NatsUser } from "./permissions";

/**
 * The environment variable nats-server reads a user's password from (`NATS_PASSWORD_<USER>`):
 * the generated block names it as a `$` reference, so the file holds no secret.
 */
export function passwordEnv(user: NatsUser): string {
  return `NATS_PASSWORD_${user.toUpperCase()}`;
}

const PASSWORD_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{15,}$/;
const CONFIG_WORDS = /^(true|false|yes|no|on|off)$/i;

/**
 * Why `password` cannot be a user's password, or null when it can: nats-server parses the value
 * of a `$VAR` reference as a config value, so one starting with a digit (`3x`) fails to parse and
 * `true` would be a boolean. Letters, digits, `-` and `_`, a letter first, at least 16 long.
 */
export function passwordProblem(password: string): string | null {
  if (PASSWORD_PATTERN.test(password) && !CONFIG_WORDS.test(password)) return null;
  return "a NATS password here is at least 16 letters, digits, '-' or '_', starting with a letter (nats-server parses a $VAR value as config: a leading digit breaks it)";
}

const q = (s: string) => JSON.stringify(s);

function list(items: string[], indent: string): string {
  return `[\n${items.map((i) => `${indent}  ${q(i)}`).join("\n")}\n${indent}]`;
}

/**
 * The nats-server `authorization { users = [...] }` block of the mesh of `names`: the admin user
 * (no limits) and one user per service with its allow lists from {@link servicePermissions}, each
 * password a `$NATS_PASSWORD_<USER>` reference resolved from the server's environment (a server
 * missing one refuses to start, naming it).
 */
export function renderAuthorization(names: MeshNames): string {
  const users = NATS_USERS.map((user) => {
    const head = `    {\n      user: ${q(user)}\n      password: $${passwordEnv(user)}`;
    if (user === ADMIN_USER) return `${head}\n    }`;
    const p = servicePermissions(names, user);
    return [
      head,
      "      permissions: {",
      `        publish: { allow: ${list(p.publish, "        ")} }`,
      `        subscribe: { allow: ${list(p.subscribe, "        ")} }`,
      "        allow_responses: true",
      "      }",
      "    }",
    ].join("\n");
  });
  return [
    `# NATS users of mesh "${names.prefix}", generated from libs/subjects (tools/nats-admin.ts auth-config); do not edit.`,
    `# Passwords come from the server's environment: ${NATS_USERS.map((u) => passwordEnv(u)).join(", ")}.`,
    "authorization {",
    "  users = [",
    users.join("\n"),
    "  ]",
    "}",
    "",
  ].join("\n");
}
