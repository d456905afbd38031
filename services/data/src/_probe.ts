import cassandra from "cassandra-driver";
import { DataLayer, compileTypeDef } from "./index";
const c = new cassandra.Client({ contactPoints: ["127.0.0.1:39042"], localDataCenter: "datacenter1" });
await c.connect();
console.log((await c.execute("SELECT keyspace_name FROM system_schema.keyspaces")).rows.map((r) => r.get(0)).join(" "));
const base = { name: "website", key: ["domain"], fields: { domain: "text", title: "text", rank: "int" } };
const o = (raw: object) => ({ contactPoints: ["127.0.0.1:39042"], localDataCenter: "datacenter1", keyspace: "probe_ks", replication: { datacenter1: 1 }, types: [compileTypeDef(raw, "website.yaml")] });
await (await DataLayer.open(o(base))).close();
try { await DataLayer.open(o({ ...base, fields: { domain: "text", rank: "bigint" } })); } catch (e) { console.log((e as Error).message); }
try { await DataLayer.open({ ...o(base), localDataCenter: "dc9" }); } catch (e) { console.log((e as any).code, (e as Error).message); }
try { await DataLayer.open({ ...o(base), contactPoints: ["127.0.0.1:39999"] }); } catch (e) { console.log((e as any).code, (e as Error).message); }
await c.execute("DROP KEYSPACE probe_ks");
await c.shutdown();
