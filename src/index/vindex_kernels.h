/*
 * Inner-product kernels for the vector indexes, chosen once at run time.
 *
 * Each kernel computes the same sums in its own order, so results differ
 * between kernels in the last bits; within one process every caller goes
 * through vindex_kernel_best(), so scores are consistent everywhere.
 *
 * Thread-safety: all functions are thread-safe; the kernel table is
 * immutable and the choice is made once (pthread_once).
 */
#ifndef RAGD_INDEX_VINDEX_KERNELS_H
#define RAGD_INDEX_VINDEX_KERNELS_H

#include <stddef.h>

struct vindex_kernel {
	const char *name; /* "scalar", "avx2", "avx512" */
	/* Inner product of a and b, dim floats each. */
	float (*dot)(const float *a, const float *b, size_t dim);
	/*
	 * out[i] = dot(q, rows + i * dim) for i < n_rows, bit-identical to
	 * calling dot on each row.
	 */
	void (*dot_many)(const float *q, const float *rows, size_t n_rows, size_t dim,
			 float *out);
};

/*
 * The kernel used by the indexes: the widest one this CPU and OS support,
 * unless the environment variable RAGD_VINDEX_KERNEL names another supported
 * one ("scalar", "avx2", "avx512"), for benchmarks and bug hunts. Never NULL;
 * the pointer is static.
 */
const struct vindex_kernel *vindex_kernel_best(void);

/*
 * Stores up to max pointers to the kernels this CPU supports, scalar first,
 * into out and returns how many there are (for tests). Pointers are static.
 */
size_t vindex_kernels_supported(const struct vindex_kernel **out, size_t max);

#endif
