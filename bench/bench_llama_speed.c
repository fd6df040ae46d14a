/*
 * llama.cpp's own speed for a GGUF, measured the way llama-bench does it
 * (pp: one batch of n_prompt tokens from an empty cache; tg: n_gen tokens
 * decoded one at a time after a one-token start; each test repeated and
 * averaged, after a warm-up run), on the same static llama.cpp ragd links,
 * so that ragd's figures through its API can be set next to the engine's.
 *
 *     build/bench_llama_speed MODEL.gguf [n_prompt 512] [n_gen 128] [threads 2] [reps 3]
 *
 * Why not llama-bench itself: it needs llama.cpp's `common` library (the
 * chat parsers, jinja, argument handling: most of the tree), which the
 * cached llama.cpp build does not install and which takes longer to
 * compile than the benchmark runs. Weight repacking is off, as in ragd
 * (ggml's AMX repack dies of SIGILL on this machine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llama.h>

#include "core/banned.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
	(void)user;
	if (level == GGML_LOG_LEVEL_ERROR)
		fputs(text, stderr);
}

static int run(struct llama_context *c, const struct llama_vocab *v, int n_prompt, int n_gen,
	       double *pp_s, double *tg_s)
{
	int n_vocab = llama_vocab_n_tokens(v);
	llama_token *toks = malloc((size_t)n_prompt * sizeof(*toks));
	llama_token t = llama_vocab_bos(v) >= 0 ? llama_vocab_bos(v) : 1;
	double t0;

	if (!toks)
		return -1;
	for (int i = 0; i < n_prompt; i++)
		toks[i] = rand() % n_vocab;
	llama_memory_clear(llama_get_memory(c), true);
	t0 = now_s();
	if (llama_decode(c, llama_batch_get_one(toks, n_prompt)) != 0)
		return -1;
	llama_synchronize(c);
	*pp_s = now_s() - t0;
	llama_memory_clear(llama_get_memory(c), true);
	t0 = now_s();
	for (int i = 0; i < n_gen; i++) {
		if (llama_decode(c, llama_batch_get_one(&t, 1)) != 0)
			return -1;
		llama_synchronize(c);
		t = rand() % n_vocab;
	}
	*tg_s = now_s() - t0;
	free(toks);
	return 0;
}

int main(int argc, char **argv)
{
	int n_prompt = argc > 2 ? atoi(argv[2]) : 512, n_gen = argc > 3 ? atoi(argv[3]) : 128;
	int threads = argc > 4 ? atoi(argv[4]) : 2, reps = argc > 5 ? atoi(argv[5]) : 3;
	struct llama_model_params mp = llama_model_default_params();
	struct llama_context_params cp = llama_context_default_params();
	struct llama_model *m;
	struct llama_context *c;
	double pp = 0, tg = 0, a, b;

	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL.gguf [n_prompt] [n_gen] [threads] [reps]\n", argv[0]);
		return 2;
	}
	llama_log_set(quiet, NULL);
	llama_backend_init();
	mp.n_gpu_layers = 0;
	mp.use_extra_bufts = false;
	m = llama_model_load_from_file(argv[1], mp);
	if (!m)
		return 1;
	cp.n_ctx = (uint32_t)(n_prompt + n_gen + 16);
	cp.n_batch = (uint32_t)n_prompt;
	cp.n_ubatch = (uint32_t)(n_prompt < 512 ? n_prompt : 512);
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	cp.no_perf = true;
	c = llama_init_from_model(m, cp);
	if (!c || run(c, llama_model_get_vocab(m), n_prompt, n_gen, &a, &b) < 0) /* warm-up */
		return 1;
	for (int r = 0; r < reps; r++) {
		if (run(c, llama_model_get_vocab(m), n_prompt, n_gen, &a, &b) < 0)
			return 1;
		pp += n_prompt / a;
		tg += n_gen / b;
	}
	printf("| model | threads | test | t/s |\n| --- | --- | --- | --- |\n");
	printf("| %s | %d | pp%d | %.1f |\n", argv[1], threads, n_prompt, pp / reps);
	printf("| %s | %d | tg%d | %.1f |\n", argv[1], threads, n_gen, tg / reps);
	llama_free(c);
	llama_model_free(m);
	llama_backend_free();
	return 0;
}
