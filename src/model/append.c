/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/append.h"

#include <string.h>

#define MBOX_FROM     "From "
#define MBOX_FROM_LEN (sizeof(MBOX_FROM) - 1)

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

	p = data;
	end = data + len;
	if (len >= MBOX_FROM_LEN && memcmp(data, MBOX_FROM, MBOX_FROM_LEN) == 0) {
		lf = memchr(data, '\n', len);
		p = lf ? lf + 1 : end;
	}
	n = (gsize)(end - p);
	/* No check of what the bytes look like: the server judges (what a
	   server once stored can always be put back). */
	if (n == 0) {
		g_set_error_literal(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "message is empty after its mbox From line");
		return FALSE;
	}

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

/* Whether line [p, p+n) is field name (blanks before ':' allowed); *value: after the ':'. */
static gboolean field_is(const guint8 *p, gsize n, const char *name, gsize *value)
{
	gsize nl = strlen(name), i;

	if (n <= nl || g_ascii_strncasecmp((const char *)p, name, nl) != 0)
		return FALSE;
	for (i = nl; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if (i >= n || p[i] != ':')
		return FALSE;
	*value = i + 1;
	return TRUE;
}

char *append_message_id(const guint8 *data, gsize len)
{
	const guint8 *q = data, *end = data + len;
	GString *val = NULL;
	char *s;

	if (data == NULL || len == 0)
		return NULL;

	while (q < end) {
		const guint8 *lf = memchr(q, '\n', (gsize)(end - q));
		const guint8 *next = lf ? lf + 1 : end;
		gsize n = (gsize)((lf ? lf : end) - q), v;

		if (n > 0 && q[n - 1] == '\r' && lf)
			n--;
		if (n == 0)
			break; /* end of the header block */
		if (q[0] == ' ' || q[0] == '\t') {
			if (val)
				g_string_append_len(val, (const char *)q, (gssize)n);
		} else if (val) {
			break; /* the next field: the first Message-ID is complete */
		} else if (field_is(q, n, "Message-ID", &v)) {
			val = g_string_new_len((const char *)q + v, (gssize)(n - v));
		}
		q = next;
	}
	if (!val)
		return NULL;
	if (memchr(val->str, '\0', val->len)) {
		g_string_free(val, TRUE);
		return NULL;
	}
	s = g_strstrip(g_string_free(val, FALSE));
	if (*s == '\0') {
		g_free(s);
		return NULL;
	}
	/* g_strstrip moved the text to the front; shrink to what is left. */
	return g_realloc(s, strlen(s) + 1);
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

/* The separators of user.imap.flags: what `setfattr -v` users type between flags. */
static gboolean is_flag_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
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
