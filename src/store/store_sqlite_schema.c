/*
 * The SQLite store's schema and its forward migrations, and the one
 * translation of SQLite result codes into RAG_E* codes.
 *
 * The version lives in meta(key 'schema_version'), not in PRAGMA
 * user_version, so that it can sit next to other facts about the data
 * directory and be read with plain SQL by the tools of any backend.
 * migrations[v] takes a database from version v to v + 1; version 0 is an
 * empty file. Migrations only ever append: a released entry is never edited,
 * a fix is a new entry. The whole climb runs in one IMMEDIATE transaction,
 * so a crash mid-way leaves the old version intact and two processes
 * opening the same fresh directory serialise instead of both migrating.
 *
 * Schema notes (version 1):
 * - collections.id is AUTOINCREMENT so that ids are never reused, even after
 *   the newest collection is deleted; chunks.id likewise, so a stale index
 *   entry can never hydrate to some other document's chunk.
 * - documents keep a rowid (their text can be large: WITHOUT ROWID tables
 *   suit small rows); changes, small and always read by (collection, seq),
 *   are WITHOUT ROWID.
 * - Foreign keys cascade as a safety net, but the store deletes children
 *   explicitly, so correctness does not hang on PRAGMA foreign_keys.
 * - chunks_by_doc serves per-document range lookups and, through its
 *   collection_id prefix, per-collection scans.
 *
 * Version 2 adds to each chunk its PDF page, its section path, its content
 * address (hash of text + chunker settings + model fingerprint; indexed per
 * collection so an edited document finds the vectors of its unchanged
 * chunks) and the fingerprint of the model its vector came from; and the
 * jobs and job_items tables (a job's inputs live in the store until each is
 * done, which is what lets a job resume after a restart). Old chunks get
 * empty hashes: they are never matched, only re-embedded once.
 *
 * Version 4 adds api_keys (src/auth/auth.h): id, tenant, role, the salted
 * hash of the secret and per-key limits.
 */
#include "store/store_sqlite.h"
#include "store/store_sqlite_int.h"

#include "core/rag_error.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#include "core/banned.h"

static const char *const migrations[STORE_SQLITE_SCHEMA_VERSION] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE collections ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" tenant TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" embed_model TEXT NOT NULL,"
	" dim INTEGER NOT NULL CHECK (dim > 0),"
	" chunk_size INTEGER NOT NULL CHECK (chunk_size > 0),"
	" chunk_overlap INTEGER NOT NULL CHECK (chunk_overlap >= 0),"
	" config_json TEXT NOT NULL DEFAULT '{}',"
	" created_at INTEGER NOT NULL,"
	" seq INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (tenant, name));"
	"CREATE TABLE documents ("
	" collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,"
	" id TEXT NOT NULL,"
	" text TEXT NOT NULL,"
	" metadata_json TEXT NOT NULL DEFAULT '{}',"
	" content_hash TEXT NOT NULL DEFAULT '',"
	" n_chunks INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" PRIMARY KEY (collection_id, id));"
	"CREATE TABLE chunks ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" collection_id INTEGER NOT NULL,"
	" document_id TEXT NOT NULL,"
	" ordinal INTEGER NOT NULL,"
	" start_byte INTEGER NOT NULL,"
	" end_byte INTEGER NOT NULL CHECK (end_byte >= start_byte),"
	" text TEXT NOT NULL,"
	" embedding BLOB NOT NULL,"
	" FOREIGN KEY (collection_id, document_id)"
	"  REFERENCES documents (collection_id, id) ON DELETE CASCADE);"
	"CREATE INDEX chunks_by_doc ON chunks (collection_id, document_id, ordinal);"
	"CREATE TABLE changes ("
	" collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,"
	" seq INTEGER NOT NULL,"
	" op INTEGER NOT NULL CHECK (op IN (1, 2)),"
	" document_id TEXT NOT NULL,"
	" first_chunk INTEGER NOT NULL,"
	" last_chunk INTEGER NOT NULL,"
	" at INTEGER NOT NULL,"
	" PRIMARY KEY (collection_id, seq)) WITHOUT ROWID;",
	/* 1 -> 2: chunk structure and content addresses, jobs. */
	"ALTER TABLE chunks ADD COLUMN page INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE chunks ADD COLUMN section TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE chunks ADD COLUMN hash TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE chunks ADD COLUMN model TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX chunks_by_hash ON chunks (collection_id, hash);"
	"CREATE TABLE jobs ("
	" id TEXT PRIMARY KEY,"
	" tenant TEXT NOT NULL,"
	" collection TEXT NOT NULL,"
	" kind TEXT NOT NULL,"
	" spec_json TEXT NOT NULL DEFAULT '{}',"
	" state INTEGER NOT NULL DEFAULT 0,"
	" n_total INTEGER NOT NULL DEFAULT 0,"
	" n_done INTEGER NOT NULL DEFAULT 0,"
	" n_failed INTEGER NOT NULL DEFAULT 0,"
	" n_skipped INTEGER NOT NULL DEFAULT 0,"
	" n_chunks INTEGER NOT NULL DEFAULT 0,"
	" n_bytes INTEGER NOT NULL DEFAULT 0,"
	" created_at INTEGER NOT NULL,"
	" started_at INTEGER NOT NULL DEFAULT 0,"
	" updated_at INTEGER NOT NULL,"
	" finished_at INTEGER NOT NULL DEFAULT 0,"
	" owner TEXT NOT NULL DEFAULT '',"
	" lease_until INTEGER NOT NULL DEFAULT 0,"
	" error TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX jobs_by_state ON jobs (state, created_at);"
	"CREATE TABLE job_items ("
	" job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" doc_id TEXT,"
	" name TEXT NOT NULL DEFAULT '',"
	" content_type TEXT NOT NULL DEFAULT '',"
	" format TEXT NOT NULL DEFAULT 'auto',"
	" metadata_json TEXT,"
	" body BLOB,"
	" state INTEGER NOT NULL DEFAULT 0,"
	" error TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY (job_id, idx));",
	/*
	 * 2 -> 3: conversation sessions (the answers' follow-ups). IF NOT
	 * EXISTS so that the step is idempotent whatever its number ends up
	 * being next to other branches' migrations.
	 */
	"CREATE TABLE IF NOT EXISTS sessions ("
	" tenant TEXT NOT NULL,"
	" id TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" n_messages INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (tenant, id)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS session_messages ("
	" tenant TEXT NOT NULL,"
	" session_id TEXT NOT NULL,"
	" seq INTEGER NOT NULL,"
	" role TEXT NOT NULL,"
	" content TEXT NOT NULL,"
	" at INTEGER NOT NULL,"
	" PRIMARY KEY (tenant, session_id, seq)) WITHOUT ROWID;",
	/*
	 * 3 -> 4: API keys. Only a salted hash of each secret is kept; the id
	 * is public (it appears in the token and in metrics labels). Limits
	 * are per key, -1 meaning the configured default.
	 */
	"CREATE TABLE IF NOT EXISTS api_keys ("
	" id TEXT PRIMARY KEY,"
	" tenant TEXT NOT NULL,"
	" role TEXT NOT NULL,"
	" name TEXT NOT NULL DEFAULT '',"
	" salt TEXT NOT NULL,"
	" hash TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" requests_per_s REAL NOT NULL DEFAULT -1,"
	" burst INTEGER NOT NULL DEFAULT -1,"
	" ingest_bytes_per_day INTEGER NOT NULL DEFAULT -1,"
	" tokens_per_day INTEGER NOT NULL DEFAULT -1);"
	"CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant, created_at);",
};

int store_sqlite_error(sqlite3 *db, int rc, struct rag_err *err, const char *what)
{
	int code;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = RAG_EBUSY;
		break;
	case SQLITE_NOMEM:
		code = RAG_ENOMEM;
		break;
	case SQLITE_TOOBIG:
		code = RAG_ETOOBIG;
		break;
	case SQLITE_CONSTRAINT:
		/* Callers check their input first: only a duplicate is the client's doing. */
		code = (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			       ? RAG_ECONFLICT
			       : RAG_EINTERNAL;
		break;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_PROTOCOL:
	case SQLITE_NOLFS:
		code = RAG_EIO;
		break;
	default:
		code = RAG_EINTERNAL;
		break;
	}
	return rag_err_set(err, code, NULL, "store: %s: %s", what,
			   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int exec(sqlite3 *db, const char *sql, struct rag_err *err, const char *what)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_sqlite_error(db, rc, err, what);
}

/* Reads the stored version into *out: 0 for a fresh file. */
static int read_version(sqlite3 *db, int64_t *out, struct rag_err *err)
{
	sqlite3_stmt *s = NULL;
	int rc;

	*out = 0;
	rc = sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER) FROM meta"
				    " WHERE key = 'schema_version'", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			*out = sqlite3_column_int64(s, 0);
		if (rc == SQLITE_ROW || rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		rc = store_sqlite_error(db, rc, err, "read schema version");
	sqlite3_finalize(s);
	return rc;
}

int store_sqlite_migrate(sqlite3 *db, struct rag_err *err)
{
	char sql[128];
	int64_t version;
	int rc;

	rc = exec(db, "BEGIN IMMEDIATE", err, "open database");
	if (rc)
		return rc;
	rc = exec(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
		  err, "create meta table");
	if (rc)
		goto fail;
	rc = read_version(db, &version, err);
	if (rc)
		goto fail;
	if (version > STORE_SQLITE_SCHEMA_VERSION) {
		rc = rag_err_set(err, RAG_EUNSUPPORTED, NULL,
				 "data directory schema version %lld is newer than this ragd"
				 " supports (%d); upgrade ragd",
				 (long long)version, STORE_SQLITE_SCHEMA_VERSION);
		goto fail;
	}
	if (version == STORE_SQLITE_SCHEMA_VERSION)
		return exec(db, "COMMIT", err, "open database");
	for (int64_t v = version; v < STORE_SQLITE_SCHEMA_VERSION; v++) {
		rc = exec(db, migrations[v], err, "migrate schema");
		if (rc)
			goto fail;
	}
	snprintf(sql, sizeof(sql),
		 "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '%d')",
		 STORE_SQLITE_SCHEMA_VERSION);
	rc = exec(db, sql, err, "migrate schema");
	if (rc)
		goto fail;
	rc = exec(db, "COMMIT", err, "migrate schema");
	if (rc)
		goto fail;
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
