/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/append.h"

#include <string.h>

gboolean append_prepare(const guint8 *data, gsize len, GByteArray **out, GError **err)
{
	const guint8 *p, *end, *q, *lf;
	gsize n, extra = 0;
	GByteArray *arr;

	g_return_val_if_fail(out != NULL, FALSE);
	*out = NULL;
	g_return_val_if_fail(data != NULL || len == 0, FALSE);

	if (len == 0) {
		g_set_error_literal(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "message is empty");
		return FALSE;
	}
	q = memchr(data, '\0', len);
	if (q) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "message holds a NUL byte (at offset %zu), which APPEND cannot carry",
			    (gsize)(q - data));
		return FALSE;
	}

	/* Whatever else is written is sent: the server judges, and a message
	 * a server once stored (a backup of it) can always be put back. */
	p = data;
	end = data + len;
	n = len;

	/* First pass: the exact size, so the copy is one allocation. */
	for (q = p; (lf = memchr(q, '\n', (gsize)(end - q))) != NULL; q = lf + 1) {
		if (lf == p || lf[-1] != '\r')
			extra++;
	}
	if (n > G_MAXUINT || extra > G_MAXUINT - n) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "message too large (%zu bytes after CRLF conversion)", n + extra);
		return FALSE;
	}

	arr = g_byte_array_sized_new((guint)(n + extra));
	for (q = p; (lf = memchr(q, '\n', (gsize)(end - q))) != NULL; q = lf + 1) {
		if (lf == p || lf[-1] != '\r') {
			g_byte_array_append(arr, q, (guint)(lf - q));
			g_byte_array_append(arr, (const guint8 *)"\r\n", 2);
		} else {
			g_byte_array_append(arr, q, (guint)(lf + 1 - q));
		}
	}
	g_byte_array_append(arr, q, (guint)(end - q));
	*out = arr;
	return TRUE;
}

static const char *const system_flags[] = {
	"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
};

/* RFC 3501 ATOM-CHAR: CHAR except atom-specials ( ) { SP CTL % * DQUOTE \ ] */
static gboolean is_atom_char(guint8 c)
{
	return c >= 0x21 && c <= 0x7e && !strchr("(){%*\"\\]", c);
}

static gboolean bad_flag(GError **err, const char *tok, gsize n, const char *why)
{
	g_autofree char *raw = g_strndup(tok, n);
	g_autofree char *shown = g_strescape(raw, NULL);

	g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "invalid flag \"%s\": %s", shown, why);
	return FALSE;
}

/* The flag as sent (canonical case for a system flag), or NULL with *err set. */
static const char *check_flag(const char *tok, gsize n, GError **err)
{
	if (tok[0] == '\\') {
		for (gsize i = 0; i < G_N_ELEMENTS(system_flags); i++) {
			if (strlen(system_flags[i]) == n &&
			    g_ascii_strncasecmp(tok, system_flags[i], n) == 0)
				return system_flags[i];
		}
		if (n == 7 && g_ascii_strncasecmp(tok, "\\Recent", 7) == 0)
			bad_flag(err, tok, n, "\\Recent is set only by the server");
		else
			bad_flag(err, tok, n,
				 "not a system flag (\\Seen \\Answered \\Flagged \\Deleted \\Draft)");
		return NULL;
	}
	for (gsize i = 0; i < n; i++) {
		if (!is_atom_char((guint8)tok[i])) {
			bad_flag(err, tok, n,
				 "a keyword is printable ASCII without ( ) { % * \" \\ ]");
			return NULL;
		}
	}
	return tok;
}

/* The separator of user.imap.flags: spaces only. A control character (TAB,
   CR, LF included) is refused, not taken for a separator: a value holding a
   line break is a mistake (a file's contents, a pasted line), and splitting
   it would set flags nobody asked for. */
static gboolean is_flag_sep(char c)
{
	return c == ' ';
}

gboolean append_parse_flags(const char *value, gsize len, char **canonical, GError **err)
{
	g_autoptr(GHashTable) seen = NULL;
	GString *res;
	gsize i = 0;

	g_return_val_if_fail(canonical != NULL, FALSE);
	*canonical = NULL;
	g_return_val_if_fail(value != NULL || len == 0, FALSE);

	while (len > 0 && value[len - 1] == '\0')
		len--;
	seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	res = g_string_new(NULL);
	while (i < len) {
		gsize start, n;
		const char *flag;
		char *key;

		if (is_flag_sep(value[i])) {
			i++;
			continue;
		}
		start = i;
		while (i < len && !is_flag_sep(value[i]))
			i++;
		n = i - start;
		flag = check_flag(value + start, n, err);
		if (!flag) {
			g_string_free(res, TRUE);
			return FALSE;
		}
		/* IMAP compares flags without regard to ASCII case. */
		key = g_ascii_strdown(flag, (gssize)n);
		if (!g_hash_table_add(seen, key))
			continue;
		if (res->len > 0)
			g_string_append_c(res, ' ');
		g_string_append_len(res, flag, (gssize)n);
	}
	*canonical = g_string_free(res, FALSE);
	return TRUE;
}

char *append_internaldate(gint64 unix_time)
{
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(unix_time);

	if (!dt)
		return NULL;
	return g_strdup_printf("%2d-%s-%04d %02d:%02d:%02d +0000", g_date_time_get_day_of_month(dt),
			       months[g_date_time_get_month(dt) - 1], g_date_time_get_year(dt),
			       g_date_time_get_hour(dt), g_date_time_get_minute(dt),
			       g_date_time_get_second(dt));
}

gboolean append_is_scratch_name(const char *name)
{
	gsize n;

	g_return_val_if_fail(name != NULL, FALSE);
	n = strlen(name);
	return name[0] == '.' || (n > 0 && name[n - 1] == '~');
}
