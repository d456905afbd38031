import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { BaseConfig } from "@machina/config";
import { meshNames } from "@machina/subjects";
import { connectNats } from "./nats-connect";
import { ensureSharedTopology, pipelineStreams } from "./topology";

/** What {@link bootstrapMesh} ensured. */
export interface BootstrapResult {
  streams: string[];
  bucket: string;
}

/**
 * The admin bootstrap of the mesh `config.mesh.prefix`: connects as configured (the admin user)
 * and creates or updates the objects several services share, the pipeline streams and the config
 * chain's bucket, with `config.nats.replicas` replicas. Settings it may not change go to `onKept`.
 */
export async function bootstrapMesh(config: BaseConfig, onKept?: (why: string) => void): Promise<BootstrapResult> {
  const names = meshNames(config.mesh.prefix);
  const nc = await connectNats(config, "admin", names);
  try {
    await ensureSharedTopology(await jetstreamManager(nc), new Kvm(nc), names, config.nats.replicas, onKept);
    return {
      streams: Object.values(pipelineStreams(names, config.nats.replicas)).map((s) => s.name),
      bucket: names.buckets.config,
    };
  } finally {
    await nc.close();
  }
}
