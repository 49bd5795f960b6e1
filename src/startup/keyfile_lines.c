/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "startup/keyfile_lines.h"

#include <string.h>

/* Does the key file made of text[0..len) load? */
static gboolean loads(const char *text, gsize len)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();

	return g_key_file_load_from_data(kf, len ? text : "", len, G_KEY_FILE_NONE, NULL);
}

/* Byte offset just past line n (1-based), or len when the text is shorter. */
static gsize end_of_line(const char *text, gsize len, guint n)
{
	gsize off = 0;

	for (guint i = 0; i < n && off < len; i++) {
		const char *nl = memchr(text + off, '\n', len - off);

		off = nl ? (gsize)(nl - text) + 1 : len;
	}
	return off;
}

guint keyfile_error_line(const char *text, gsize len)
{
	guint lines = 0, lo, hi;

	if (loads(text, len))
		return 0;
	for (gsize i = 0; i < len; i++)
		lines += text[i] == '\n';
	if (len > 0 && text[len - 1] != '\n')
		lines++;
	/* The first line at which a prefix stops loading: the prefixes that
	   fail are exactly those that reach the bad line. */
	lo = 1;
	hi = MAX(lines, 1u);
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;

		if (loads(text, end_of_line(text, len, mid)))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Walk the lines as GKeyFile sees them: leading blanks skipped, a trailing
 * '\r' dropped, '#' and empty lines are comments, "[NAME]" (blanks after it
 * allowed) starts a group, and "KEY = VALUE" names KEY up to the first '=',
 * trailing blanks dropped.
 */
struct walk {
	const char *text;
	gsize len, off;
	guint line;
	const char *start; /* the current line, leading blanks skipped */
	gsize n;	   /* its length, without line end */
};

static gboolean next_line(struct walk *w)
{
	const char *nl;
	gsize end;

	if (w->off >= w->len)
		return FALSE;
	nl = memchr(w->text + w->off, '\n', w->len - w->off);
	end = nl ? (gsize)(nl - w->text) : w->len;
	w->start = w->text + w->off;
	w->n = end - w->off;
	w->off = nl ? end + 1 : w->len;
	w->line++;
	if (w->n > 0 && w->start[w->n - 1] == '\r')
		w->n--;
	while (w->n > 0 && g_ascii_isspace(*w->start)) {
		w->start++;
		w->n--;
	}
	return TRUE;
}

/* The group a "[NAME]" line starts, or NULL (not a group line). */
static char *group_of(const struct walk *w)
{
	const char *close;

	if (w->n == 0 || w->start[0] != '[')
		return NULL;
	close = memchr(w->start, ']', w->n);
	if (!close)
		return NULL;
	for (const char *p = close + 1; p < w->start + w->n; p++) {
		if (*p != ' ' && *p != '\t')
			return NULL;
	}
	return g_strndup(w->start + 1, (gsize)(close - w->start - 1));
}

/* Does this "KEY = VALUE" line set key? */
static gboolean sets_key(const struct walk *w, const char *key)
{
	const char *eq = w->n ? memchr(w->start, '=', w->n) : NULL;
	gsize klen;

	if (!eq || w->start[0] == '#')
		return FALSE;
	klen = (gsize)(eq - w->start);
	while (klen > 0 && g_ascii_isspace(w->start[klen - 1]))
		klen--;
	return klen == strlen(key) && memcmp(w->start, key, klen) == 0;
}

guint keyfile_key_line(const char *text, gsize len, const char *group, const char *key)
{
	struct walk w = { .text = text, .len = len };
	gboolean in_group = FALSE;
	guint found = 0;

	while (next_line(&w)) {
		g_autofree char *g = group_of(&w);

		if (g)
			in_group = strcmp(g, group) == 0;
		else if (in_group && sets_key(&w, key))
			found = w.line;
	}
	return found;
}

guint keyfile_group_line(const char *text, gsize len, const char *group)
{
	struct walk w = { .text = text, .len = len };

	while (next_line(&w)) {
		g_autofree char *g = group_of(&w);

		if (g && strcmp(g, group) == 0)
			return w.line;
	}
	return 0;
}
