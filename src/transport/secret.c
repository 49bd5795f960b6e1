/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "transport/secret.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Longest first line a source may give: OAuth tokens run to a few KiB. */
#define LINE_MAX_BYTES ((size_t)64 * 1024)
/* How much of a failing command's stderr we keep, and show. */
#define ERR_KEEP 1024
#define ERR_SHOW 200

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	g_free(s);
}

/*
 * The first line of buf[0..len) as a new string, or NULL when it is empty.
 * *too_long when no line end came within LINE_MAX_BYTES.
 */
static char *first_line(const char *buf, size_t len, gboolean *too_long)
{
	const char *nl = memchr(buf, '\n', len);
	size_t l = nl ? (size_t)(nl - buf) : len;

	*too_long = l > LINE_MAX_BYTES;
	if (*too_long)
		return NULL;
	if (l > 0 && buf[l - 1] == '\r')
		l--;
	if (l == 0)
		return NULL;
	return g_strndup(buf, l);
}

/* ---- command ---- */

struct sink {
	int fd; /* -1 once at EOF */
	char *buf;
	size_t cap, len;
};

/* Read what fd has now, keeping at most cap bytes; the rest is drained unseen. */
static void sink_read(struct sink *s)
{
	char scratch[4096];

	while (s->fd >= 0) {
		size_t room = s->cap - s->len;
		char *dst = room ? s->buf + s->len : scratch;
		ssize_t n = read(s->fd, dst, room ? room : sizeof(scratch));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			close(s->fd);
			s->fd = -1;
			break;
		}
		if (room)
			s->len += (size_t)n;
	}
	explicit_bzero(scratch, sizeof(scratch));
}

/* " (stderr: ...)" from the first line of what the command wrote there. */
static char *stderr_note(const struct sink *e)
{
	const char *nl = memchr(e->buf, '\n', e->len);
	size_t l = nl ? (size_t)(nl - e->buf) : e->len;
	g_autofree char *shown = NULL;

	if (l > 0 && e->buf[l - 1] == '\r')
		l--;
	if (l == 0)
		return g_strdup("");
	shown = mfs_log_escape(e->buf, l, ERR_SHOW);
	return g_strdup_printf(": %s", shown);
}

char *secret_from_command(const char *command_line, int timeout_s, GError **err)
{
	g_auto(GStrv) argv = NULL;
	GError *perr = NULL;
	GPid pid;
	int out_fd = -1, err_fd = -1, status = 0;
	gboolean exited = FALSE, too_long = FALSE;
	gint64 deadline = timeout_s > 0
			      ? g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC
			      : G_MAXINT64;
	struct sink out = {.cap = LINE_MAX_BYTES + 1};
	struct sink errs = {.cap = ERR_KEEP};
	g_autofree char *note = NULL;
	char *line = NULL;

	if (!g_shell_parse_argv(command_line, NULL, &argv, &perr)) {
		g_propagate_prefixed_error(err, perr, "cannot parse command '%s': ", command_line);
		return NULL;
	}
	if (!g_spawn_async_with_pipes_and_fds(
		NULL, (const char *const *)argv, NULL,
		G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL |
		    G_SPAWN_CLOEXEC_PIPES,
		NULL, NULL, -1, -1, -1, NULL, NULL, 0, &pid, NULL, &out_fd, &err_fd, &perr)) {
		g_propagate_prefixed_error(err, perr, "cannot run command '%s': ", argv[0]);
		return NULL;
	}
	g_unix_set_fd_nonblocking(out_fd, TRUE, NULL);
	g_unix_set_fd_nonblocking(err_fd, TRUE, NULL);
	out.fd = out_fd;
	out.buf = g_malloc(out.cap);
	errs.fd = err_fd;
	errs.buf = g_malloc(errs.cap);

	/*
	 * Until the child exits: its output as it comes. A grandchild may
	 * keep the pipes open, so the child's exit, not EOF, ends the wait.
	 */
	for (;;) {
		struct pollfd p[2];
		nfds_t n = 0;
		gint64 left;
		int ms;

		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = TRUE;
		if (exited) {
			sink_read(&out);
			sink_read(&errs);
			break;
		}
		left = deadline == G_MAXINT64 ? G_MAXINT64 : deadline - g_get_monotonic_time();
		if (left <= 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
				    "command '%s' did not finish within %d s; killed it", argv[0],
				    timeout_s);
			goto out;
		}
		if (out.fd >= 0)
			p[n++] = (struct pollfd){.fd = out.fd, .events = POLLIN};
		if (errs.fd >= 0)
			p[n++] = (struct pollfd){.fd = errs.fd, .events = POLLIN};
		/* With both pipes closed only the exit is left: look every 10 ms. */
		ms = n ? 100 : 10;
		if (left / 1000 < ms)
			ms = (int)(left / 1000) + 1;
		if (poll(p, n, ms) > 0) {
			sink_read(&out);
			sink_read(&errs);
		}
	}

	note = stderr_note(&errs);
	if (WIFSIGNALED(status)) {
		g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
			    "command '%s' was killed by signal %d%s", argv[0], WTERMSIG(status),
			    note);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
			    "command '%s' failed (exit status %d)%s", argv[0],
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1, note);
		goto out;
	}
	line = first_line(out.buf, out.len, &too_long);
	if (too_long)
		g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
			    "command '%s' printed a first line longer than %zu bytes", argv[0],
			    LINE_MAX_BYTES);
	else if (!line)
		g_set_error(err, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
			    "command '%s' printed nothing%s", argv[0], note);
out:
	if (out.fd >= 0)
		close(out.fd);
	if (errs.fd >= 0)
		close(errs.fd);
	explicit_bzero(out.buf, out.cap);
	g_free(out.buf);
	g_free(errs.buf);
	g_spawn_close_pid(pid);
	return line;
}

/* ---- file ---- */

char *secret_from_file(const char *path, GError **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap = LINE_MAX_BYTES + 1;
	gboolean too_long = FALSE;
	char *line = NULL;

	if (fd < 0) {
		int e = errno;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e),
			    "cannot open password_file %s: %s", path, g_strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "password_file %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_PERM,
			    "password_file %s is %s by others (mode %04o); chmod 600 it", path,
			    st.st_mode & (S_IRGRP | S_IROTH) ? "readable" : "accessible",
			    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	buf = g_malloc(cap);
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e),
				    "cannot read password_file %s: %s", path, g_strerror(e));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (memchr(buf + len - (size_t)n, '\n', (size_t)n))
			break;
	}
	line = first_line(buf, len, &too_long);
	if (too_long)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "password_file %s: first line longer than %zu bytes", path,
			    LINE_MAX_BYTES);
	else if (!line)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "password_file %s is empty (the password is its first line)", path);
out:
	if (buf) {
		explicit_bzero(buf, cap);
		g_free(buf);
	}
	close(fd);
	return line;
}

/* ---- terminal ---- */

static void tty_write(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

char *secret_prompt(const char *prompt, GError **err)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios old, quiet;
	char buf[4096];
	size_t len = 0;
	gboolean failed = FALSE;
	char *line = NULL;

	if (fd < 0) {
		int e = errno;

		g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no terminal to ask for the password (/dev/tty: %s); "
			    "set password_command or password_file",
			    g_strerror(e));
		return NULL;
	}
	if (tcgetattr(fd, &old) < 0) {
		int e = errno;

		close(fd);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no terminal to ask for the password (/dev/tty: %s); "
			    "set password_command or password_file",
			    g_strerror(e));
		return NULL;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	/* TCSAFLUSH: drop anything typed ahead, before echo went off. */
	(void)tcsetattr(fd, TCSAFLUSH, &quiet);
	tty_write(fd, prompt);

	for (;;) {
		char ch;
		ssize_t n = read(fd, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			failed = TRUE;
			break;
		}
		if (n == 0 || ch == '\n')
			break;
		if (len < sizeof(buf))
			buf[len++] = ch;
	}
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	tty_write(fd, "\n");
	close(fd);

	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (failed)
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "cannot read the password from the terminal");
	else if (len == 0)
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "no password entered");
	else
		line = g_strndup(buf, len);
	explicit_bzero(buf, sizeof(buf));
	return line;
}
