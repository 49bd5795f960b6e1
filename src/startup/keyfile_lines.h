/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * keyfile_lines: where things are in the text of a GLib key file, so that a
 * config error can name its line (GKeyFile reports neither the line of a
 * parse error nor where a key was read from).
 *
 * The text is the file's bytes as read, not necessarily NUL-terminated
 * (len given). Lines are counted from 1 and end at '\n'; a "\r\n" line end is
 * counted once. 0 means "not found". Nothing here allocates what it returns.
 *
 * Pure functions, any thread.
 */
#ifndef MFS_KEYFILE_LINES_H
#define MFS_KEYFILE_LINES_H

#include <glib.h>

/*
 * The line of the first error GKeyFile finds in text: the shortest run of
 * whole lines from the start that g_key_file_load_from_data() refuses ends
 * at it (GKeyFile reads line by line and stops at the first bad one). 0 when
 * the whole text loads.
 */
guint keyfile_error_line(const char *text, gsize len);

/*
 * The line that sets key in group, as GKeyFile reads it: the last
 * "key = value" of that key in any section with that name (a repeated key or
 * section: the last one wins). 0 when there is none.
 */
guint keyfile_key_line(const char *text, gsize len, const char *group, const char *key);

/* The line of the first "[group]" header with that name; 0 when there is none. */
guint keyfile_group_line(const char *text, gsize len, const char *group);

#endif
