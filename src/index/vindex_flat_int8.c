/*
 * The int8 side of the flat_int8 index: quantisation and the scan kernel.
 *
 * Each vector is quantised symmetrically with its own scale (max |v_i| / 127),
 * so an approximate inner product is qscale * scale * sum(q_i * r_i) with
 * exact int32 sums. A quarter of the bytes of f32 means a quarter of the
 * memory bandwidth per scan, which is what bounds an exact search; the best
 * `rescore` candidates are then re-scored in f32 (vindex_flat_scan.c), so
 * the final scores equal the flat index's.
 *
 * The loops are plain C: this file is compiled with -O3 and the build's
 * -march, which vectorises the int8 products into widening multiply-adds
 * (AVX2 or AVX-512). Rejected: a per-dimension global scale (embedding
 * components are small and uneven, it wastes most of the int8 range) and
 * runtime-dispatched intrinsics (the auto-vectorised loop was enough here).
 */
#include "index/vindex_flat.h"

#include <math.h>

void vindex_flat_quantize(const float *v, size_t dim, int8_t *q, float *scale)
{
	float maxabs = 0.0f;

	for (size_t i = 0; i < dim; i++)
		maxabs = fmaxf(maxabs, fabsf(v[i]));
	if (maxabs == 0.0f) {
		for (size_t i = 0; i < dim; i++)
			q[i] = 0;
		*scale = 0.0f;
		return;
	}
	float inv = 127.0f / maxabs;
	for (size_t i = 0; i < dim; i++)
		q[i] = (int8_t)lrintf(v[i] * inv);
	*scale = maxabs / 127.0f;
}

static int32_t dot_i8(const int8_t *restrict a, const int8_t *restrict b, size_t dim)
{
	int32_t sum = 0;

	for (size_t i = 0; i < dim; i++)
		sum += (int32_t)a[i] * (int32_t)b[i];
	return sum;
}

void vindex_flat_dot_many_i8(const int8_t *q, float qscale, const int8_t *rows,
			     const float *scales, size_t n, size_t dim, float *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = (float)dot_i8(q, rows + r * dim, dim) * qscale * scales[r];
}
