/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * secret: where passwords and OAuth tokens come from.
 *
 * Each source returns one secret: the first line of what it gives, without
 * the line end (a trailing CR is dropped too; other whitespace is kept, it
 * may be part of a password). The caller owns the string and releases it
 * with secret_free(), which wipes it. Error messages never contain the
 * secret; nothing here logs.
 *
 * Thread-safe (no shared state), but secret_from_command() reaps its own
 * child with waitpid(pid): a SIGCHLD handler that reaps every child
 * (waitpid(-1)) would steal it.
 */
#ifndef MFS_SECRET_H
#define MFS_SECRET_H

#include <glib.h>

/*
 * Run command_line as an argv (split with shell quoting rules by
 * g_shell_parse_argv(), but NO shell runs it; the program is looked up in
 * PATH), with stdin from /dev/null and no terminal assumed. Errors: the
 * command cannot be parsed or started, exits non-zero or is killed (the
 * message carries the first line of its stderr, bounded and escaped), prints
 * nothing, or runs longer than timeout_s (it is killed with SIGKILL;
 * timeout_s <= 0: no limit). The first line is at most 64 KiB.
 */
char *secret_from_command(const char *command_line, int timeout_s, GError **err);

/*
 * The first line of the file at path. Refused unless it is a regular file
 * with no group or other permission bits (0600 or stricter), or when it is
 * empty. The messages call it password_file, the key users set.
 */
char *secret_from_file(const char *path, GError **err);

/*
 * Ask on the controlling terminal (/dev/tty, not stdin/stdout) with echo
 * off. Error when there is no terminal, or nothing was entered.
 */
char *secret_prompt(const char *prompt, GError **err);

/* Wipe and free; NULL is ignored. */
void secret_free(char *s);

#endif
