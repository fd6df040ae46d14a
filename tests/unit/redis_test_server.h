/*
 * A real redis-server for the unit tests that need one (test_cache_redis.c,
 * test_auth_quota_redis.c): started on a free loopback port, no
 * persistence, DEBUG allowed from loopback (DEBUG SLEEP makes it slow),
 * killed with SIGKILL. The including file defines, before including this:
 *
 *	static int port;          the server's port, set by the caller
 *	static pid_t server = -1; the server's pid
 *	static char dir[];        its working directory (made by the caller)
 *
 * and includes cmocka.h, <arpa/inet.h>, <fcntl.h>, <signal.h>,
 * <sys/socket.h>, <sys/wait.h> and <unistd.h>.
 */
#ifndef RAGD_TESTS_REDIS_TEST_SERVER_H
#define RAGD_TESTS_REDIS_TEST_SERVER_H

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static int listening(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void start_redis(void)
{
	char p[16];

	snprintf(p, sizeof(p), "%d", port);
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save",
		       "", "--appendonly", "no", "--dir", dir, "--enable-debug-command", "local",
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && !listening(); i++)
		usleep(25 * 1000);
	assert_true(listening()); /* is redis-server installed? */
}

static void stop_redis(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	server = -1;
}

#endif
