import type { ServiceDefaults, ServiceValidator } from "@machina/config-chain";
import type { JsonValue } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames, ServiceName } from "@machina/subjects";
import { MachinaError, isMachinaError } from "@machina/wire";

/** How long vertex waits for an owner's verdict on a patch. Compiling a few components takes milliseconds. */
const VALIDATE_TIMEOUT_MS = 5_000;

/**
 * Asks the service that owns a part of the tree (`config.validate.<service>`, one replica of
 * it) whether it takes the proposed tree: vertex cannot compile other services' components (no
 * service imports another), so the owners judge them. Its refusal is passed on as it is; no
 * replica answering is a retryable UNAVAILABLE naming the service.
 */
export function remoteValidator(client: MeshClient, names: MeshNames): ServiceValidator {
  return async (service, tree) => {
    const subject = names.config.validate(service as ServiceName);
    try {
      await client.request(
        subject,
        "ConfigDocument",
        { path: `/${service}`, value: tree as unknown as JsonValue },
        "Ack",
        { timeoutMs: VALIDATE_TIMEOUT_MS },
      );
    } catch (err) {
      if (isMachinaError(err) && err.code !== "UNAVAILABLE" && err.code !== "TIMEOUT") throw err;
      throw new MachinaError(
        "UNAVAILABLE",
        `${service}: no ${service} replica answered ${subject}, so the patch cannot be checked and is not stored; send it again once ${service} runs`,
        { retryable: true, cause: err, details: { service, dependency: service } },
      );
    }
  };
}

/**
 * Asks a component's owner (`config.defaults.<service>`, one replica) for it with the schema
 * defaults filled in, for config.explain: vertex declares no other service's schemas. No replica
 * answering is a retryable UNAVAILABLE naming the service.
 */
export function remoteDefaults(client: MeshClient, names: MeshNames): ServiceDefaults {
  return async (service, kind, name, doc) => {
    const subject = names.config.defaults(service as ServiceName);
    try {
      const reply = await client.request(
        subject,
        "ConfigDocument",
        { path: `/${kind}/${name}`, value: doc as JsonValue },
        "ConfigDocument",
        { timeoutMs: VALIDATE_TIMEOUT_MS },
      );
      return reply.value ?? undefined;
    } catch (err) {
      if (isMachinaError(err) && err.code !== "UNAVAILABLE" && err.code !== "TIMEOUT") throw err;
      throw new MachinaError(
        "UNAVAILABLE",
        `${service}: no ${service} replica answered ${subject}, so whether a schema default applies cannot be told; ask again once ${service} runs`,
        { retryable: true, cause: err, details: { service, dependency: service } },
      );
    }
  };
}
