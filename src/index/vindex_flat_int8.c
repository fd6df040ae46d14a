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
 * The int8 dot product uses AVX2's widening multiply-add (vpmaddwd) when
 * the build's -march has AVX2 (native here, and the portable x86-64-v3
 * target); GCC's own vectorisation of the plain loop used multiplies and
 * extensions instead and was no faster than the f32 scan. Rejected: a
 * per-dimension global scale (embedding components are small and uneven,
 * it wastes most of the int8 range) and runtime dispatch (the build's
 * -march already decides for the f32-free path).
 */
#include "index/vindex_flat.h"

#include <math.h>

#ifdef __AVX2__
#include <immintrin.h>
#endif

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
	size_t i = 0;

#ifdef __AVX2__
	/* 16 int8 pairs a step: sign-extend to int16, multiply-add pairs into int32. */
	__m256i acc = _mm256_setzero_si256();
	for (; i + 16 <= dim; i += 16) {
		__m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
		__m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
		acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
	}
	__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
	sum = _mm_cvtsi128_si32(s4);
#endif
	for (; i < dim; i++)
		sum += (int32_t)a[i] * (int32_t)b[i];
	return sum;
}

void vindex_flat_dot_many_i8(const int8_t *q, float qscale, const int8_t *rows,
			     const float *scales, size_t n, size_t dim, float *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = (float)dot_i8(q, rows + r * dim, dim) * qscale * scales[r];
}
