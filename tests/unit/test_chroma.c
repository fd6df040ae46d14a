/*
 * Tests for the Chroma client and the chroma vector index.
 *
 * Without a server: the JSON bodies (base64 against RFC 4648's vectors,
 * upsert/query bodies parsed back, query answers good and bad), and the
 * transport's failures (connection refused, a server that accepts and never
 * answers) becoming RAG_EBUSY within the timeout.
 *
 * With a real server: when RAGD_CHROMA_BIN names the `chroma` CLI
 * (scripts/test.sh sets it from the test virtual environment), the group
 * setup starts `chroma run` on a free loopback port in a temporary
 * directory, and the chroma index (vindex_create with type "chroma") is
 * checked against the flat index on the same
 * seeded vectors: same ids, scores within 1e-5, filters by hint and by
 * over-fetch, removals, snapshot save/load and its validation, drop.
 * Without it those tests are skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "index/chroma_client.h"
#include "index/vindex.h"

static uint64_t rng_state = 42;

static float frand(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return (float)((double)((x * 0x2545f4914f6cdd1dULL) >> 11) / (double)(1ULL << 53) * 2.0 -
		       1.0);
}

static void rand_vecs(float *v, size_t n, size_t dim)
{
	for (size_t i = 0; i < n * dim; i++)
		v[i] = frand();
	for (size_t i = 0; i < n; i++)
		vindex_normalize(v + i * dim, dim);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- codec --- */

static void test_base64(void **state)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };
	char buf[16];

	(void)state;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		assert_int_equal(chroma_base64(in[i], strlen(in[i]), buf), strlen(out[i]));
		assert_string_equal(buf, out[i]);
	}
}

static int b64val(char c)
{
	const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = strchr(abc, c);

	return p && c ? (int)(p - abc) : -1;
}

/* Decodes base64 (length a multiple of 4) into out; returns bytes written. */
static size_t unb64(const char *s, unsigned char *out)
{
	size_t n = 0, len = strlen(s);

	for (size_t i = 0; i + 4 <= len; i += 4) {
		uint32_t v = 0;
		int pad = 0;

		for (int j = 0; j < 4; j++) {
			int d = s[i + j] == '=' ? (pad++, 0) : b64val(s[i + j]);

			assert_true(d >= 0);
			v = v << 6 | (uint32_t)d;
		}
		out[n++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)v;
	}
	return n;
}

static void test_encode_upsert(void **state)
{
	const int64_t ids[3] = { 7, 123456789012345LL, -1 };
	float vecs[3 * 5], back[5];
	struct sbuf sb = SBUF_INIT;
	json_t *o, *e;

	(void)state;
	rand_vecs(vecs, 3, 5);
	vecs[3] = 1e-30f; /* odd values survive exactly */
	assert_int_equal(chroma_encode_upsert(&sb, ids, vecs, 3, 5), 0);
	o = json_loads(sb.buf, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "ids"), 1)),
			    "123456789012345");
	e = json_object_get(o, "embeddings");
	assert_int_equal(json_array_size(e), 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(unb64(json_string_value(json_array_get(e, i)),
				       (unsigned char *)back),
				 sizeof(back));
		assert_memory_equal(back, vecs + i * 5, sizeof(back));
		assert_int_equal(json_integer_value(json_object_get(
					 json_array_get(json_object_get(o, "metadatas"), i), "rid")),
				 ids[i]);
	}
	json_decref(o);
	sbuf_reset(&sb);
	assert_int_equal(chroma_encode_delete(&sb, ids, 2), 0);
	assert_string_equal(sb.buf, "{\"ids\":[\"7\",\"123456789012345\"]}");
	sbuf_release(&sb);
}

static void test_encode_query(void **state)
{
	float v[4] = { 0.1f, -1.0f / 3.0f, 1e-7f, 0.999999f };
	const int64_t allowed[2] = { 5, 9 };
	struct chroma_query q = { v, 4, 10, NULL, 0 };
	struct sbuf sb = SBUF_INIT;
	json_t *o, *arr;

	(void)state;
	assert_int_equal(chroma_encode_query(&sb, &q), 0);
	o = json_loads(sb.buf, 0, NULL);
	assert_non_null(o);
	arr = json_array_get(json_object_get(o, "query_embeddings"), 0);
	for (size_t i = 0; i < 4; i++)
		assert_true((float)json_number_value(json_array_get(arr, i)) == v[i]);
	assert_int_equal(json_integer_value(json_object_get(o, "n_results")), 10);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "include"), 0)),
			    "distances");
	assert_null(json_object_get(o, "where"));
	json_decref(o);

	sbuf_reset(&sb);
	q.where_ids = allowed;
	q.n_where_ids = 2;
	assert_int_equal(chroma_encode_query(&sb, &q), 0);
	assert_non_null(strstr(sb.buf, "\"where\":{\"rid\":{\"$in\":[5,9]}}"));
	o = json_loads(sb.buf, 0, NULL);
	assert_non_null(o);
	json_decref(o);

	sbuf_reset(&sb);
	q.n_results = 0; /* Chroma drops the connection on 0: refused here */
	assert_int_equal(chroma_encode_query(&sb, &q), RAG_EINVAL);
	q.n_results = 1;
	v[2] = NAN;
	sbuf_reset(&sb);
	assert_int_equal(chroma_encode_query(&sb, &q), RAG_EINVAL);
	sbuf_release(&sb);
}

static void test_decode_query(void **state)
{
	const char *good = "{\"ids\":[[\"3\",\"10\"]],\"distances\":[[0.25,1.5]],"
			   "\"include\":[\"distances\"]}";
	const char *bad[] = {
		"", "[]", "{\"ids\":[[\"3\"]]}",
		"{\"ids\":[[\"3\",\"4\"]],\"distances\":[[0.1]]}",
		"{\"ids\":[[\"x3\"]],\"distances\":[[0.1]]}",
		"{\"ids\":[[\"3\"]],\"distances\":[[null]]}",
		"{\"ids\":[[\"99999999999999999999\"]],\"distances\":[[0.1]]}",
		"{\"ids\":[[\"1\",\"2\",\"3\"]],\"distances\":[[0.1,0.2,0.3]]}", /* > max */
	};
	int64_t ids[2];
	float d[2];
	size_t n = 9;
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(chroma_decode_query(good, strlen(good), 2, ids, d, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 10);
	assert_true(d[0] == 0.25f && d[1] == 1.5f);
	good = "{\"ids\":[[]],\"distances\":[[]]}";
	assert_int_equal(chroma_decode_query(good, strlen(good), 2, ids, d, &n, NULL), 0);
	assert_int_equal(n, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rag_err_clear(&err);
		assert_int_equal(chroma_decode_query(bad[i], strlen(bad[i]), 2, ids, d, &n, &err),
				 RAG_EIO);
		assert_int_equal(n, 0);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_decode_collection_and_error(void **state)
{
	const char *c = "{\"id\":\"edce5d4b-7009-4898-b429-665b8f0b3a82\",\"name\":\"x\","
			"\"dimension\":384}";
	char id[CHROMA_ID_MAX], msg[128];
	size_t dim = 0;

	(void)state;
	assert_int_equal(chroma_decode_collection(c, strlen(c), id, &dim, NULL), 0);
	assert_string_equal(id, "edce5d4b-7009-4898-b429-665b8f0b3a82");
	assert_int_equal(dim, 384);
	c = "{\"id\":\"abc\",\"dimension\":null}";
	assert_int_equal(chroma_decode_collection(c, strlen(c), id, &dim, NULL), 0);
	assert_int_equal(dim, 0);
	c = "{\"name\":\"x\"}";
	assert_int_equal(chroma_decode_collection(c, strlen(c), id, &dim, NULL), RAG_EIO);

	c = "{\"error\":\"NotFoundError\",\"message\":\"Collection [x] does not exist\"}";
	chroma_decode_error(c, strlen(c), msg, sizeof(msg));
	assert_string_equal(msg, "NotFoundError: Collection [x] does not exist");
	chroma_decode_error("Bad Gateway", 11, msg, sizeof(msg));
	assert_string_equal(msg, "Bad Gateway");
}

/* --- transport failures, no server --- */

/* A loopback socket that listens but never accepts: requests hang on it. */
static int listen_mute(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_unavailable(void **state)
{
	struct chroma_client_options o = chroma_client_default_options();
	struct rag_err err = { 0 };
	struct chroma_client *cl;
	char url[64];
	int port, fd = listen_mute(&port);
	double t0;

	(void)state;
	o.url = "ftp://x";
	assert_null(chroma_client_new(&o, &err));
	assert_int_equal(err.code, RAG_EINVAL);

	/* Nothing listens on a port we just closed: refused at once. */
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	o.url = url;
	o.timeout_ms = 400;
	cl = chroma_client_new(&o, NULL);
	assert_non_null(cl);
	rag_err_clear(&err);
	assert_int_equal(chroma_heartbeat(cl, &err), RAG_EBUSY);
	assert_non_null(strstr(err.msg, url));
	chroma_client_free(cl);

	/* A server that accepts and never answers: bounded by the timeout. */
	fd = listen_mute(&port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	cl = chroma_client_new(&o, NULL);
	assert_non_null(cl);
	rag_err_clear(&err);
	t0 = now_s();
	assert_int_equal(chroma_heartbeat(cl, &err), RAG_EBUSY);
	assert_true(now_s() - t0 < 3.0);
	assert_non_null(strstr(err.msg, "unavailable"));
	chroma_client_free(cl);
	close(fd);
}

/* --- against a real server --- */

struct server {
	pid_t pid;
	char dir[64];
	char url[64];
	struct chroma_client *cl;
};

static struct server srv;

static int free_port(void)
{
	int port, fd = listen_mute(&port);

	close(fd);
	return port;
}

static int server_up(void **state)
{
	const char *bin = getenv("RAGD_CHROMA_BIN");
	struct chroma_client_options o = chroma_client_default_options();
	char port[16], path[96];
	int devnull;

	(void)state;
	if (!bin || access(bin, X_OK) != 0)
		return 0; /* the tests skip themselves */
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/ragd-chroma-XXXXXX");
	if (!mkdtemp(srv.dir))
		return -1;
	snprintf(port, sizeof(port), "%d", free_port());
	snprintf(path, sizeof(path), "%s/db", srv.dir);
	snprintf(srv.url, sizeof(srv.url), "http://127.0.0.1:%s", port);
	srv.pid = fork();
	if (srv.pid == 0) {
		devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execl(bin, bin, "run", "--path", path, "--host", "127.0.0.1", "--port", port,
		      (char *)NULL);
		_exit(127);
	}
	o.url = srv.url;
	o.tenant = "ragd_test";
	o.database = "unit";
	o.timeout_ms = 10000;
	srv.cl = chroma_client_new(&o, NULL);
	for (double t0 = now_s(); srv.cl && now_s() - t0 < 60; usleep(100000))
		if (chroma_heartbeat(srv.cl, NULL) == 0)
			return 0;
	return -1;
}

static int server_down(void **state)
{
	char cmd[128];

	(void)state;
	chroma_client_free(srv.cl);
	if (srv.pid > 0) {
		kill(srv.pid, SIGTERM);
		waitpid(srv.pid, NULL, 0);
	}
	if (srv.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", srv.dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

static struct vindex_spec chroma_spec(struct chroma_client *cl, const char *name)
{
	struct vindex_spec spec = vindex_spec_default();

	snprintf(spec.type, sizeof(spec.type), "chroma");
	/*
	 * Chroma searches an HNSW graph: with the defaults (ef_search 64) a
	 * run on random vectors now and then ranks one neighbour differently
	 * from the exact scan. A search beam far wider than the test's 600
	 * vectors makes Chroma's answer exact, so the comparison is strict.
	 */
	spec.m = 32;
	spec.ef_construction = 800;
	spec.ef_search = 800;
	spec.chroma = cl;
	snprintf(spec.chroma_collection, sizeof(spec.chroma_collection), "%s", name);
	return spec;
}

#define NEED_SERVER()                                                          \
	do {                                                                   \
		if (!srv.cl)                                                   \
			skip();                                                \
	} while (0)

static int keep_mod3(void *ctx, int64_t id)
{
	(void)ctx;
	return id % 3 == 0;
}

static int keep_one(void *ctx, int64_t id)
{
	return id == *(const int64_t *)ctx;
}

/* The chroma index answers as the flat one does on the same data. */
static void compare(struct vindex *flat, struct vindex *chroma, const float *q, size_t k,
		    const struct vindex_filter *f)
{
	int64_t a[64], b[64];
	float sa[64], sb[64];
	size_t na = 0, nb = 0;
	struct rag_err err = { 0 };

	assert_int_equal(vindex_search(flat, q, k, f, a, sa, &na, &err), 0);
	assert_int_equal(vindex_search(chroma, q, k, f, b, sb, &nb, &err), 0);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(a[i], b[i]);
		assert_true(fabsf(sa[i] - sb[i]) < 1e-5f);
	}
}

static void test_index_matches_flat(void **state)
{
	enum { N = 600, DIM = 32 };
	struct vindex_spec o = chroma_spec(srv.cl, "ragd-unit-match-1");
	struct vindex *flat, *ci;
	int64_t *ids, *allowed;
	float *vecs, q[DIM];
	struct vindex_filter f3 = { .keep = keep_mod3 }, hint = { .keep = keep_mod3 };
	struct rag_err err = { 0 };
	size_t n_allowed = 0, n_out = 0;
	int64_t one = 301, out[8];

	(void)state;
	NEED_SERVER(); /* skipping longjmps: allocate after it */
	flat = vindex_flat_new(DIM);
	ids = malloc(N * sizeof(*ids));
	allowed = malloc(N * sizeof(*allowed));
	vecs = malloc(N * DIM * sizeof(*vecs));
	ci = vindex_create(&o, DIM, &err);
	assert_non_null(ci);
	assert_string_equal(vindex_kind(ci), "chroma");
	rand_vecs(vecs, N, DIM);
	for (size_t i = 0; i < N; i++) {
		ids[i] = (int64_t)i * 2 + 1; /* odd ids: 1, 3, ..., 1199 */
		if (ids[i] % 3 == 0)
			allowed[n_allowed++] = ids[i];
	}
	assert_int_equal(vindex_add(flat, ids, vecs, N, NULL), 0);
	assert_int_equal(vindex_add(ci, ids, vecs, N, &err), 0);
	assert_int_equal(vindex_count(ci), N);
	assert_int_equal(vindex_check(ci, &err), 0);
	for (int t = 0; t < 5; t++) {
		rand_vecs(q, 1, DIM);
		compare(flat, ci, q, 10, NULL);
		compare(flat, ci, q, 10, &f3); /* over-fetch with keep() */
		hint.ids = allowed;
		hint.n_ids = n_allowed;
		compare(flat, ci, q, 10, &hint); /* the where clause */
	}
	/* A filter matching one vector far down the ranking: over-fetch grows. */
	struct vindex_filter only = { .keep = keep_one, .ctx = &one };
	rand_vecs(q, 1, DIM);
	assert_int_equal(vindex_search(ci, q, 5, &only, out, NULL, &n_out, &err), 0);
	assert_int_equal(n_out, 1);
	assert_int_equal(out[0], 301);
	/* A filter matching nothing returns nothing, both ways. */
	one = 2;
	assert_int_equal(vindex_search(ci, q, 5, &only, out, NULL, &n_out, &err), 0);
	assert_int_equal(n_out, 0);
	only.ids = &one;
	only.n_ids = 1;
	assert_int_equal(vindex_search(ci, q, 5, &only, out, NULL, &n_out, &err), 0);
	assert_int_equal(n_out, 0);

	/* Removal and replacement, mirrored in the flat index. */
	assert_int_equal(vindex_remove(ci, ids, 100), 100);
	vindex_remove(flat, ids, 100);
	assert_int_equal(vindex_remove(ci, ids, 100), 0);
	rand_vecs(vecs, 10, DIM);
	assert_int_equal(vindex_add(ci, ids + 200, vecs, 10, &err), 0);
	assert_int_equal(vindex_add(flat, ids + 200, vecs, 10, NULL), 0);
	assert_int_equal(vindex_count(ci), N - 100);
	for (int t = 0; t < 3; t++) {
		rand_vecs(q, 1, DIM);
		compare(flat, ci, q, 20, NULL);
		compare(flat, ci, q, 20, &f3);
	}
	vecs[5] = NAN;
	assert_int_equal(vindex_add(ci, ids, vecs, 1, NULL), RAG_EINVAL);
	assert_int_equal(vindex_drop(ci, &err), 0);
	vindex_free(ci);
	vindex_free(flat);
	free(ids);
	free(allowed);
	free(vecs);
}

static void test_snapshot(void **state)
{
	enum { N = 50, DIM = 8 };
	struct vindex_spec o = chroma_spec(srv.cl, "ragd-unit-snap-2");
	struct vindex_spec other = chroma_spec(srv.cl, "ragd-unit-other-3"), flat;
	struct vindex *ci, *back;
	int64_t ids[N], out[3];
	float vecs[N * DIM], sc[3];
	char path[128];
	uint64_t seq = 0;
	size_t n_out;
	struct rag_err err = { 0 };

	(void)state;
	NEED_SERVER();
	snprintf(path, sizeof(path), "%s/snap.vidx", srv.dir);
	ci = vindex_create(&o, DIM, &err);
	assert_non_null(ci);
	rand_vecs(vecs, N, DIM);
	for (size_t i = 0; i < N; i++)
		ids[i] = (int64_t)i;
	assert_int_equal(vindex_add(ci, ids, vecs, N, &err), 0);
	assert_int_equal(vindex_save(ci, path, 17, &err), 0);

	back = vindex_open(&o, path, DIM, &seq, &err);
	assert_non_null(back);
	assert_int_equal(seq, 17);
	assert_int_equal(vindex_count(back), N);
	assert_int_equal(vindex_search(back, vecs + 4 * DIM, 3, NULL, out, sc, &n_out, &err), 0);
	assert_int_equal(out[0], 4);
	assert_true(fabsf(sc[0] - 1.0f) < 1e-5f);
	vindex_free(back);

	/* Wrong dimension, wrong collection, a flat loader on it: rejected. */
	rag_err_clear(&err);
	assert_null(vindex_open(&o, path, DIM + 1, NULL, &err));
	assert_non_null(strstr(err.msg, "dimension"));
	rag_err_clear(&err);
	assert_null(vindex_open(&other, path, DIM, NULL, &err));
	assert_non_null(strstr(err.msg, "another"));
	rag_err_clear(&err);
	flat = vindex_spec_default();
	assert_null(vindex_open(&flat, path, DIM, NULL, &err));
	rag_err_clear(&err);
	assert_null(vindex_load(path, DIM, NULL, &err)); /* no server to check it with */

	/* The server changed behind the snapshot's back: rejected. */
	vindex_remove(ci, ids, 1);
	rag_err_clear(&err);
	assert_null(vindex_open(&o, path, DIM, NULL, &err));
	assert_non_null(strstr(err.msg, "records"));
	/* Recreated: a new id. */
	assert_int_equal(vindex_save(ci, path, 18, &err), 0);
	vindex_free(ci);
	ci = vindex_create(&o, DIM, &err);
	assert_non_null(ci);
	assert_int_equal(vindex_count(ci), 0);
	rag_err_clear(&err);
	assert_null(vindex_open(&o, path, DIM, NULL, &err));
	assert_int_equal(err.code, RAG_ECONFLICT);
	/* Dropped: gone. */
	assert_int_equal(vindex_drop(ci, &err), 0);
	assert_int_equal(vindex_drop(ci, &err), 0);
	rag_err_clear(&err);
	assert_null(vindex_open(&o, path, DIM, NULL, &err));
	assert_int_equal(err.code, RAG_ENOTFOUND);
	vindex_free(ci);
}

/* A stopped server makes searches fail with RAG_EBUSY, and they recover. */
static void test_server_paused(void **state)
{
	enum { DIM = 4 };
	struct vindex_spec o = chroma_spec(NULL, "ragd-unit-pause-4");
	struct chroma_client_options co = chroma_client_default_options();
	struct chroma_client *cl;
	struct vindex *ci;
	int64_t ids[2] = { 1, 2 }, out[2];
	float vecs[2 * DIM] = { 1, 0, 0, 0, 0, 1, 0, 0 };
	size_t n_out = 9;
	struct rag_err err = { 0 };
	double t0;

	(void)state;
	NEED_SERVER();
	co.url = srv.url;
	co.tenant = "ragd_test";
	co.database = "unit";
	co.timeout_ms = 500;
	cl = chroma_client_new(&co, NULL);
	o.chroma = cl;
	ci = vindex_create(&o, DIM, &err);
	assert_non_null(ci);
	assert_int_equal(vindex_add(ci, ids, vecs, 2, &err), 0);
	kill(srv.pid, SIGSTOP);
	t0 = now_s();
	assert_int_equal(vindex_search(ci, vecs, 2, NULL, out, NULL, &n_out, &err), RAG_EBUSY);
	assert_true(now_s() - t0 < 5.0);
	assert_int_equal(n_out, 0);
	/* A removal while it is away stays pending and hides the id. */
	vindex_remove(ci, ids, 1);
	kill(srv.pid, SIGCONT);
	assert_int_equal(vindex_search(ci, vecs, 2, NULL, out, NULL, &n_out, &err), 0);
	assert_int_equal(n_out, 1);
	assert_int_equal(out[0], 2);
	assert_int_equal(vindex_count(ci), 1);
	assert_int_equal(vindex_check(ci, &err), 0);
	vindex_drop(ci, NULL);
	vindex_free(ci);
	chroma_client_free(cl);
}

int main(void)
{
	const struct CMUnitTest offline[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_encode_upsert),
		cmocka_unit_test(test_encode_query),
		cmocka_unit_test(test_decode_query),
		cmocka_unit_test(test_decode_collection_and_error),
		cmocka_unit_test(test_unavailable),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_index_matches_flat),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_server_paused),
	};
	int failed = cmocka_run_group_tests_name("chroma offline", offline, NULL, NULL);

	return failed + cmocka_run_group_tests_name("chroma server", live, server_up, server_down);
}
