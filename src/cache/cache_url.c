/*
 * Redis addresses as configured: "host:port", "redis://host:port", and
 * "redis://[user]:password@host:port", whose user info becomes an AUTH
 * (AUTH password, or AUTH user password for a Redis 6 ACL user) on every
 * connection. Percent-escapes in the user info are decoded, so a password
 * may hold ':', '@' or '/' as %3A, %40, %2F. User info without a ':' is
 * refused rather than guessed at: in a URL that is a user name alone.
 */
#include "cache/cache_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/str.h"

#include "core/banned.h"

#define REDIS_DEFAULT_PORT 6379

static size_t scheme_len(const char *s, size_t len)
{
	return len >= 8 && strncmp(s, "redis://", 8) == 0 ? 8 : 0;
}

/* Drops blanks around s[0..*len) and a trailing '/'. */
static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' ||
			    (*s)[*len - 1] == '/'))
		(*len)--;
}

size_t cache_url_userinfo_end(const char *s, size_t len)
{
	size_t from = scheme_len(s, len);
	const char *at = memrchr(s + from, '@', len - from);

	return at ? (size_t)(at - s) + 1 : from;
}

/* Percent-decodes s[0..len) into out (NUL-terminated); -1 when bad or too long. */
static int decode(const char *s, size_t len, char *out, size_t out_size)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi = i + 2 < len ? str_hex_digit(s[i + 1]) : -1;
			int lo = hi >= 0 ? str_hex_digit(s[i + 2]) : -1;

			if (lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0 || n + 1 >= out_size)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* The credentials of one address s[0..len); *found 0 when it has none. */
static int one_auth(const char *s, size_t len, struct redis_auth *out, int *found)
{
	size_t from = scheme_len(s, len);
	size_t end = cache_url_userinfo_end(s, len);
	const char *info = s + from, *colon;
	size_t info_len;

	memset(out, 0, sizeof(*out));
	*found = end > from;
	if (!*found)
		return 0;
	info_len = end - 1 - from;
	colon = memchr(info, ':', info_len);
	if (!colon)
		return -1;
	if (decode(info, (size_t)(colon - info), out->user, sizeof(out->user)) < 0 ||
	    decode(colon + 1, info_len - (size_t)(colon - info) - 1, out->pass,
		   sizeof(out->pass)) < 0 || !out->pass[0])
		return -1;
	return 0;
}

int cache_parse_auth(const char *url, struct redis_auth *out, const char *field,
		     struct rag_err *err)
{
	const char *p = url;
	int have = 0;

	memset(out, 0, sizeof(*out));
	while (*p) {
		size_t len = strcspn(p, ",");
		const char *addr = p;
		size_t addr_len = len;
		struct redis_auth a;
		int found;

		trim(&addr, &addr_len);
		if (one_auth(addr, addr_len, &a, &found) < 0)
			return rag_err_set(err, RAG_EINVAL, field,
					   "%s: the credentials before '@' must be "
					   "[user]:password, percent-escaped, at most %d bytes each",
					   field, CACHE_CRED_MAX - 1);
		if (found && have && memcmp(&a, out, sizeof(a)) != 0)
			return rag_err_set(err, RAG_EINVAL, field,
					   "%s: the addresses carry different credentials; "
					   "one set is used for every node", field);
		if (found && !have) {
			*out = a;
			have = 1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

int cache_parse_addr(const char *s, size_t len, char *host, size_t host_size, int *port)
{
	const char *colon;
	long p = REDIS_DEFAULT_PORT;
	size_t skip;

	trim(&s, &len);
	skip = cache_url_userinfo_end(s, len);
	s += skip;
	len -= skip;
	colon = memrchr(s, ':', len);
	if (colon) {
		char digits[8];
		size_t n = len - (size_t)(colon - s) - 1;
		char *end;

		if (n == 0 || n >= sizeof(digits))
			return RAG_EINVAL;
		memcpy(digits, colon + 1, n);
		digits[n] = '\0';
		p = strtol(digits, &end, 10);
		if (*end || p < 1 || p > 65535)
			return RAG_EINVAL;
		len = (size_t)(colon - s);
	}
	if (len == 0 || len >= host_size)
		return RAG_EINVAL;
	memcpy(host, s, len);
	host[len] = '\0';
	*port = (int)p;
	return 0;
}
