import cassandra from "cassandra-driver";

/** Contact point of the test Cassandra (the harness's CQL port, default 9042). */
export const CQL_CONTACT_POINTS = [`127.0.0.1:${Number(process.env.MACHINA_CQL_PORT ?? 9042)}`];

/**
 * An admin client on the datacenter the node reports: the harness names its datacenter, so the
 * node is asked rather than assumed.
 */
export async function adminCqlClient(): Promise<{ client: cassandra.Client; localDataCenter: string }> {
  const probe = new cassandra.Client({ contactPoints: CQL_CONTACT_POINTS, localDataCenter: "datacenter1" });
  await probe.connect();
  try {
    const local = await probe.execute("SELECT data_center FROM system.local", [], { prepare: true });
    const localDataCenter = local.first().get("data_center") as string;
    const client = new cassandra.Client({ contactPoints: CQL_CONTACT_POINTS, localDataCenter });
    await client.connect();
    return { client, localDataCenter };
  } finally {
    await probe.shutdown();
  }
}

/**
 * Env of services started in-process on `prefix` against the test Cassandra: a keyspace of their
 * own with replication 1 on the node's datacenter, and no periodic clean job (tests merge when
 * they mean to).
 */
export function dataServiceEnv(
  natsUrl: string,
  prefix: string,
  keyspace: string,
  localDataCenter: string,
): Record<string, string> {
  return {
    MACHINA_NATS_URL: natsUrl,
    MACHINA_MESH_PREFIX: prefix,
    MACHINA_HTTP_PORT: "0",
    MACHINA_LOG_LEVEL: "silent",
    MACHINA_DATA_CASSANDRA_PORT: String(Number(process.env.MACHINA_CQL_PORT ?? 9042)),
    MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
    MACHINA_DATA_CASSANDRA_LOCAL_DATA_CENTER: localDataCenter,
    MACHINA_DATA_CASSANDRA_REPLICATION: `${localDataCenter}:1`,
    MACHINA_DATA_CLEAN_INTERVAL_MS: "0",
  };
}
