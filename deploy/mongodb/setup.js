// Prepares a MongoDB database for ragd's MongoDB store (store.backend: mongodb).
// Run with mongosh against a mongos (sharded cluster) or a replica set:
//
//   RAGD_DB=ragd mongosh "mongodb://admin@mongos:27017/admin" --file setup.js
//
// Idempotent: run it again after an upgrade. ragd creates the same indexes
// itself at start-up, so on a replica set without sharding this script is
// optional; on a sharded cluster it is what shards the big collections.
// Keep the index list in step with create_indexes() in src/store/store_mongo.c.

const dbName = (typeof process !== "undefined" && process.env.RAGD_DB) || "ragd";
const shard = !(typeof process !== "undefined" && process.env.RAGD_NO_SHARDING === "1");
const d = db.getSiblingDB(dbName);

// The indexes every query of the store uses.
const indexes = {
  names: [[{ tenant: 1, name: 1 }, "tenant_name"]],
  docs: [[{ c: 1, d: 1 }, "c_d"], [{ c: 1, first: 1 }, "c_first"]],
  chunks: [[{ c: 1, hash: 1 }, "c_hash"], [{ k: 1 }, "k"], [{ c: 1, i: 1 }, "c_i"]],
  changes: [[{ c: 1, s: 1 }, "c_s"]],
  jobs: [[{ state: 1, created_at: 1 }, "state_created"]],
  job_items: [[{ j: 1, state: 1, idx: 1 }, "j_state_idx"]],
  job_bodies: [[{ j: 1, i: 1 }, "j_i"]],
};
for (const [coll, list] of Object.entries(indexes)) {
  for (const [key, name] of list) {
    d.getCollection(coll).createIndex(key, { name });
    print(`index ${dbName}.${coll} ${name}`);
  }
}

// Sharding: documents by a hashed key on their id ("<collection id>:<document
// id>"), chunks by a hashed key on their document's id, so a document and its
// chunks each spread evenly and a document's chunks sit together. The small
// collections (names, collections, counters, locks, changes, jobs, sessions,
// keys)
// stay unsharded on the primary shard: every write touches them by _id, and
// the change log is read in seq order per collection.
if (shard) {
  const hello = d.getSiblingDB("admin").runCommand({ hello: 1 });
  if (hello.msg !== "isdbgrid") {
    print("not connected to a mongos: indexes created, sharding skipped");
  } else {
    sh.enableSharding(dbName);
    sh.shardCollection(`${dbName}.docs`, { _id: "hashed" });
    sh.shardCollection(`${dbName}.chunks`, { k: "hashed" });
    print(`sharded ${dbName}.docs on {_id: "hashed"}, ${dbName}.chunks on {k: "hashed"}`);
  }
}
