import type { ServiceValidator } from "@machina/config-chain";
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
