import type { Kvm } from "@nats-io/kv";
import { ConfigChain, KindRegistry } from "@machina/config-chain";
import type { MeshClient, ServiceContext } from "@machina/runtime";
import { SERVICES } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";
import { remoteDefaults, remoteValidator } from "./remote-validators";

/** What {@link openServedChain} needs. */
export interface ServedChainOptions {
  configSource: ServiceContext<unknown>["configSource"];
  kvm: Kvm;
  client: MeshClient;
  names: MeshNames;
  replicas: number;
}

/** Opens the chain vertex appends to: every service's part of a patch is checked, and its schema defaults told, by that service. */
export async function openServedChain(opts: ServedChainOptions): Promise<ConfigChain> {
  return ConfigChain.open({
    ...opts.configSource,
    kvm: opts.kvm,
    bucket: opts.names.buckets.config,
    replicas: opts.replicas,
    registry: new KindRegistry().registerServices(
      SERVICES,
      remoteValidator(opts.client, opts.names),
      remoteDefaults(opts.client, opts.names),
    ),
  });
}
