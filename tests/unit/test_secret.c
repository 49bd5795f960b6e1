/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "transport/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- commands ---- */

static void test_command_table(void)
{
	static const struct {
		const char *cmd;
		const char *out; /* NULL: an error */
		const char *in_msg;
	} cases[] = {
	    {"printf 'hunter2\\nsecond line\\n'", "hunter2", NULL},
	    {"printf 'no newline'", "no newline", NULL},
	    {"printf 'crlf\\r\\n'", "crlf", NULL},
	    {"printf ' spaces kept \\n'", " spaces kept ", NULL},
	    /* Quoting splits words; no shell sees the $ or the ;. */
	    {"printf '%s|%s\\n' \"a b\" 'c $HOME; d'", "a b|c $HOME; d", NULL},
	    {"echo one\\ two", "one two", NULL},
	    {"sh -c 'echo \"gpg: decryption failed\" >&2; exit 1'", NULL,
	     "failed (exit status 1): gpg: decryption failed"},
	    {"sh -c 'printf \"x\\033[31my\\n\" >&2; exit 3'", NULL, "exit status 3): x\\x1b[31my"},
	    {"sh -c 'kill -TERM $$'", NULL, "killed by signal 15"},
	    {"true", NULL, "printed nothing"},
	    {"printf '\\nsecond'", NULL, "printed nothing"},
	    {"sh -c 'echo oops >&2'", NULL, "printed nothing: oops"},
	    {"/nonexistent/password-tool", NULL, "cannot run command"},
	    {"no-such-command-mailfs", NULL, "cannot run command"},
	    {"printf 'unterminated", NULL, "cannot parse command"},
	    {"", NULL, "cannot parse command"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		GError *err = NULL;
		char *got = secret_from_command(cases[i].cmd, 5, &err);

		if (cases[i].out) {
			g_assert_no_error(err);
			g_assert_cmpstr(got, ==, cases[i].out);
		} else {
			g_assert_null(got);
			g_assert_nonnull(err);
			if (!strstr(err->message, cases[i].in_msg))
				g_error("case %zu: unexpected message: %s", i, err->message);
			g_error_free(err);
		}
		secret_free(got);
	}
}

static void test_command_stdin_null(void)
{
	GError *err = NULL;
	/* cat reads /dev/null: EOF at once, prints nothing. */
	char *got = secret_from_command("cat", 5, &err);

	g_assert_null(got);
	g_assert_nonnull(strstr(err->message, "printed nothing"));
	g_error_free(err);
}

static void test_command_timeout(void)
{
	GError *err = NULL;
	gint64 t0 = g_get_monotonic_time();
	char *got = secret_from_command("sleep 30", 1, &err);
	gint64 took = g_get_monotonic_time() - t0;

	g_assert_null(got);
	g_assert_nonnull(err);
	g_assert_nonnull(strstr(err->message, "did not finish within 1 s"));
	g_assert_cmpint(took, >=, 900 * 1000);
	g_assert_cmpint(took, <, 3 * G_USEC_PER_SEC);
	g_error_free(err);
}

/* The child's exit ends the wait even if a grandchild keeps stdout open. */
static void test_command_grandchild(void)
{
	GError *err = NULL;
	gint64 t0 = g_get_monotonic_time();
	char *got = secret_from_command("sh -c 'sleep 3 & echo tok'", 10, &err);

	g_assert_no_error(err);
	g_assert_cmpstr(got, ==, "tok");
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
	secret_free(got);
}

/* A flood on stdout is drained, only the first line kept. */
static void test_command_big_output(void)
{
	GError *err = NULL;
	char *got = secret_from_command("sh -c 'echo first; head -c 1000000 /dev/zero'", 10, &err);

	g_assert_no_error(err);
	g_assert_cmpstr(got, ==, "first");
	secret_free(got);
	got = secret_from_command("sh -c 'head -c 100000 /dev/zero | tr \"\\\\0\" a'", 10, &err);
	g_assert_null(got);
	g_assert_nonnull(strstr(err->message, "longer than"));
	g_error_free(err);
}

/* ---- files ---- */

static char *tmpdir;

static char *write_file(const char *name, const char *text, mode_t mode)
{
	char *path = g_build_filename(tmpdir, name, NULL);

	g_assert_true(g_file_set_contents(path, text, -1, NULL));
	g_assert_cmpint(g_chmod(path, mode), ==, 0);
	return path;
}

static void test_file(void)
{
	static const struct {
		const char *text;
		mode_t mode;
		const char *out;
		const char *in_msg;
	} cases[] = {
	    {"s3cret\nignored\n", 0600, "s3cret", NULL},
	    {"s3cret", 0400, "s3cret", NULL},
	    {"dos\r\n", 0600, "dos", NULL},
	    {"s3cret\n", 0644, NULL, "is readable by others (mode 0644); chmod 600 it"},
	    {"s3cret\n", 0640, NULL, "is readable by others (mode 0640)"},
	    {"s3cret\n", 0602, NULL, "is accessible by others (mode 0602)"},
	    {"", 0600, NULL, "is empty"},
	    {"\nsecond\n", 0600, NULL, "is empty"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *path = write_file("pw", cases[i].text, cases[i].mode);
		GError *err = NULL;
		char *got = secret_from_file(path, &err);

		if (cases[i].out) {
			g_assert_no_error(err);
			g_assert_cmpstr(got, ==, cases[i].out);
		} else {
			g_assert_null(got);
			g_assert_nonnull(err);
			if (!strstr(err->message, cases[i].in_msg))
				g_error("case %zu: unexpected message: %s", i, err->message);
			g_assert_nonnull(strstr(err->message, path));
			g_assert_null(strstr(err->message, "s3cret"));
			g_error_free(err);
		}
		secret_free(got);
		g_unlink(path);
	}
}

static void test_file_missing_and_dir(void)
{
	g_autofree char *missing = g_build_filename(tmpdir, "missing", NULL);
	GError *err = NULL;

	g_assert_null(secret_from_file(missing, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	g_assert_nonnull(strstr(err->message, "cannot open password_file"));
	g_clear_error(&err);

	g_assert_cmpint(g_chmod(tmpdir, 0700), ==, 0);
	g_assert_null(secret_from_file(tmpdir, &err));
	g_assert_nonnull(strstr(err->message, "not a regular file"));
	g_clear_error(&err);
}

/* ---- terminal ---- */

/*
 * secret_prompt() in a child that has a new session and a pseudo-terminal as
 * its controlling terminal; the child reports what it got through a pipe.
 */
static void test_prompt_pty(void)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	int pipefd[2];
	pid_t pid;
	GString *seen;
	char buf[256];
	ssize_t n;
	int status;

	g_assert_cmpint(master, >=, 0);
	g_assert_cmpint(grantpt(master), ==, 0);
	g_assert_cmpint(unlockpt(master), ==, 0);
	g_assert_cmpint(pipe(pipefd), ==, 0);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		char *got;
		int slave;

		close(pipefd[0]);
		setsid();
		/* The first terminal a session leader opens becomes its own. */
		slave = open(ptsname(master), O_RDWR);
		if (slave < 0)
			_exit(2);
		got = secret_prompt("Password: ", NULL);
		if (got && write(pipefd[1], got, strlen(got)) < 0)
			_exit(3);
		secret_free(got);
		_exit(0);
	}
	close(pipefd[1]);
	seen = g_string_new(NULL);
	/* Type only after the prompt: echo is off by then. */
	while (!strstr(seen->str, "Password: ")) {
		struct pollfd p = {.fd = master, .events = POLLIN};

		g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
		n = read(master, buf, sizeof(buf));
		g_assert_cmpint(n, >, 0);
		g_string_append_len(seen, buf, n);
	}
	g_assert_cmpint(write(master, "hunter2\n", 8), ==, 8);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	g_assert_cmpint(n, ==, 7);
	buf[n] = '\0';
	g_assert_cmpstr(buf, ==, "hunter2");
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	/* Under valgrind the exit code is valgrind's; the pipe told the result. */
	g_assert_true(WIFEXITED(status));
	/* What the terminal showed: the prompt and a newline, not the password. */
	for (;;) {
		struct pollfd p = {.fd = master, .events = POLLIN};

		if (poll(&p, 1, 100) != 1 || (n = read(master, buf, sizeof(buf))) <= 0)
			break;
		g_string_append_len(seen, buf, n);
	}
	g_assert_null(strstr(seen->str, "hunter2"));
	g_string_free(seen, TRUE);
	close(master);
	close(pipefd[0]);
}

static void test_prompt_no_tty(void)
{
	int pipefd[2];
	pid_t pid;
	char buf[512];
	ssize_t n;
	int status;

	g_assert_cmpint(pipe(pipefd), ==, 0);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		GError *err = NULL;
		char *got;

		close(pipefd[0]);
		setsid(); /* no controlling terminal any more */
		got = secret_prompt("Password: ", &err);
		if (!got && err && write(pipefd[1], err->message, strlen(err->message)) < 0)
			_exit(1);
		secret_free(got);
		g_clear_error(&err);
		_exit(0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	g_assert_cmpint(n, >, 0);
	buf[n] = '\0';
	g_assert_nonnull(strstr(buf, "no terminal"));
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	/* Under valgrind the exit code is valgrind's; the pipe told the result. */
	g_assert_true(WIFEXITED(status));
	close(pipefd[0]);
}

int main(int argc, char **argv)
{
	int rc;

	g_test_init(&argc, &argv, NULL);
	tmpdir = g_dir_make_tmp("mailfs-test-secret-XXXXXX", NULL);
	g_assert_nonnull(tmpdir);
	g_test_add_func("/secret/command/table", test_command_table);
	g_test_add_func("/secret/command/stdin-null", test_command_stdin_null);
	g_test_add_func("/secret/command/timeout", test_command_timeout);
	g_test_add_func("/secret/command/grandchild", test_command_grandchild);
	g_test_add_func("/secret/command/big-output", test_command_big_output);
	g_test_add_func("/secret/file/table", test_file);
	g_test_add_func("/secret/file/missing", test_file_missing_and_dir);
	g_test_add_func("/secret/prompt/pty", test_prompt_pty);
	g_test_add_func("/secret/prompt/no-tty", test_prompt_no_tty);
	rc = g_test_run();
	g_rmdir(tmpdir);
	g_free(tmpdir);
	return rc;
}
