/*
 * The SQLite backend of the store: one database file, data_dir/ragd.db, in
 * WAL mode, shared safely by the threads of a process (a pool of
 * connections) and by several processes (a server and a CLI): SQLite's file
 * locks serialise writers across processes, readers never block.
 *
 * Durability: each write is one transaction, committed with
 * synchronous=FULL by default (STORE_SYNC_FULL): the WAL is fsync'ed before
 * the commit returns, so a put the API acknowledged survives a power loss.
 * synchronous=NORMAL in WAL mode is crash-safe for the process but can lose
 * the last commits on power loss; it is available as STORE_SYNC_NORMAL for
 * bulk loads that can be redone.
 *
 * Thread-safety: the struct store it returns is thread-safe (see store.h).
 */
#ifndef RAGD_STORE_STORE_SQLITE_H
#define RAGD_STORE_STORE_SQLITE_H

struct rag_err;
struct store;
struct store_options;

#define STORE_SQLITE_SCHEMA_VERSION 4 /* bump with a new entry in store_sqlite_schema.c */
#define STORE_SQLITE_DB_NAME "ragd.db"
#define STORE_SQLITE_MAX_POOL 256 /* far above any useful thread count; catches garbage */

/*
 * Opens (creating data_dir and the database when missing) and migrates the
 * schema forward to STORE_SQLITE_SCHEMA_VERSION. opts may be NULL for the
 * defaults. Returns a store the caller frees with store_free(), or NULL with
 * err set: RAG_EIO when the directory or file cannot be created or opened or
 * WAL mode is unavailable (e.g. a network file system), RAG_EUNSUPPORTED
 * when the database's schema is newer than this binary's, RAG_EBUSY when
 * another process held the database past the busy timeout, RAG_EINVAL for
 * a pool size above STORE_SQLITE_MAX_POOL.
 */
struct store *store_sqlite_open(const char *data_dir, const struct store_options *opts,
				struct rag_err *err);

#endif
