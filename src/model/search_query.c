/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/search_query.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK(search-query-error-quark, search_query_error)

/* A recursive descent over the text; every function returns FALSE with
   p->err set on the first error, and frees what it built. */
struct parser {
	const char *text;
	gsize pos;
	guint terms;
	guint depth;
	gsize first_folder; /* offset of the first folder: term, when any */
	struct search_query *q;
	GError **err;
};

static gboolean fail(struct parser *p, enum search_query_error code, gsize at, const char *fmt,
		     ...) G_GNUC_PRINTF(4, 5);

static gboolean fail(struct parser *p, enum search_query_error code, gsize at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_autofree char *what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(p->err, SEARCH_QUERY_ERROR, code, "column %" G_GSIZE_FORMAT ": %s", at + 1,
		    what);
	return FALSE;
}

static char peek(const struct parser *p)
{
	return p->text[p->pos];
}

static void skip_spaces(struct parser *p)
{
	while (peek(p) == ' ')
		p->pos++;
}

static gboolean ends_word(char c)
{
	return c == '\0' || c == ' ' || c == '(' || c == ')';
}

/* Is the bare word at p->pos exactly w (ASCII case-insensitive)? */
static gboolean at_word(const struct parser *p, const char *w)
{
	gsize n = strlen(w);

	return g_ascii_strncasecmp(p->text + p->pos, w, n) == 0 && ends_word(p->text[p->pos + n]);
}

/* -- values ------------------------------------------------------------------ */

/* A quoted string at p->pos (on the opening quote) into *out. */
static gboolean read_quoted(struct parser *p, char **out)
{
	gsize open = p->pos;
	GString *s = g_string_new(NULL);

	p->pos++;
	for (;;) {
		char c = peek(p);

		if (c == '\0') {
			g_string_free(s, TRUE);
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, open, "unclosed quote");
		}
		if (c == '"')
			break;
		if (c == '\\') {
			char e = p->text[p->pos + 1];

			if (e != '"' && e != '\\') {
				g_string_free(s, TRUE);
				return fail(p, SEARCH_QUERY_ERROR_SYNTAX, p->pos,
					    "only \\\" and \\\\ are escapes in a quoted string");
			}
			p->pos++;
			c = e;
		}
		g_string_append_c(s, c);
		p->pos++;
	}
	p->pos++;
	if (s->len == 0) {
		g_string_free(s, TRUE);
		return fail(p, SEARCH_QUERY_ERROR_SYNTAX, open, "empty quoted string");
	}
	if (!ends_word(peek(p))) {
		g_string_free(s, TRUE);
		return fail(p, SEARCH_QUERY_ERROR_SYNTAX, p->pos,
			    "a space must follow the closing quote");
	}
	*out = g_string_free(s, FALSE);
	return TRUE;
}

/* A bare word at p->pos into *out; "" when a word ends at once. */
static gboolean read_word(struct parser *p, char **out)
{
	gsize start = p->pos;

	while (!ends_word(peek(p))) {
		if (peek(p) == '"')
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, p->pos,
				    "a quote inside a word (quote the whole value)");
		p->pos++;
	}
	*out = g_strndup(p->text + start, p->pos - start);
	return TRUE;
}

static gboolean read_value(struct parser *p, char **out)
{
	return peek(p) == '"' ? read_quoted(p, out) : read_word(p, out);
}

/* YYYY-MM-DD, a real calendar date. */
static gboolean parse_date(const char *v, struct imap_search_key *k)
{
	static const char shape[] = "dddd-dd-dd";
	int y, m, d;

	if (strlen(v) != sizeof(shape) - 1)
		return FALSE;
	for (gsize i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !g_ascii_isdigit(v[i]) : v[i] != shape[i])
			return FALSE;
	y = atoi(v);
	m = atoi(v + 5);
	d = atoi(v + 8);
	if (y < 1 || !g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y))
		return FALSE;
	k->year = y;
	k->month = m;
	k->day = d;
	return TRUE;
}

/* Digits with an optional K, M or G (x1024): a number IMAP4rev1 can say (32 bits). */
static gboolean parse_size(const char *v, guint64 *out)
{
	guint64 n = 0, mult = 1;
	const char *c = v;

	if (!g_ascii_isdigit(*c))
		return FALSE;
	for (; g_ascii_isdigit(*c); c++) {
		n = n * 10 + (guint64)(*c - '0');
		if (n > G_MAXUINT32)
			return FALSE;
	}
	switch (g_ascii_toupper(*c)) {
	case '\0':
		break;
	case 'K':
		mult = 1024;
		break;
	case 'M':
		mult = 1024 * 1024;
		break;
	case 'G':
		mult = 1024 * 1024 * 1024;
		break;
	default:
		return FALSE;
	}
	if (*c && c[1])
		return FALSE;
	if (n > G_MAXUINT32 / mult)
		return FALSE;
	*out = n * mult;
	return TRUE;
}

/* A flag-keyword: an IMAP atom, not a system flag. */
static gboolean is_atom(const char *v)
{
	if (!*v || *v == '\\')
		return FALSE;
	for (const unsigned char *c = (const unsigned char *)v; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f || strchr("(){%*\"\\]", *c))
			return FALSE;
	return TRUE;
}

static const struct {
	const char *name;
	enum imap_search_op op;
} is_values[] = {
	{"unread", IMAP_SK_UNSEEN},	{"read", IMAP_SK_SEEN},
	{"flagged", IMAP_SK_FLAGGED},	{"unflagged", IMAP_SK_UNFLAGGED},
	{"answered", IMAP_SK_ANSWERED}, {"unanswered", IMAP_SK_UNANSWERED},
	{"draft", IMAP_SK_DRAFT},	{"undraft", IMAP_SK_UNDRAFT},
	{"deleted", IMAP_SK_DELETED},	{"undeleted", IMAP_SK_UNDELETED},
};

/* -- terms ------------------------------------------------------------------- */

enum field_kind { F_STRING, F_KEYWORD, F_DATE, F_SIZE, F_IS, F_FOLDER };

static const struct {
	const char *name;
	enum field_kind kind;
	enum imap_search_op op;
} fields[] = {
	{"text", F_STRING, IMAP_SK_TEXT},	 {"body", F_STRING, IMAP_SK_BODY},
	{"from", F_STRING, IMAP_SK_FROM},	 {"to", F_STRING, IMAP_SK_TO},
	{"cc", F_STRING, IMAP_SK_CC},		 {"bcc", F_STRING, IMAP_SK_BCC},
	{"subject", F_STRING, IMAP_SK_SUBJECT},	 {"raw", F_STRING, IMAP_SK_X_GM_RAW},
	{"keyword", F_KEYWORD, IMAP_SK_KEYWORD}, {"since", F_DATE, IMAP_SK_SINCE},
	{"before", F_DATE, IMAP_SK_BEFORE},	 {"on", F_DATE, IMAP_SK_ON},
	{"larger", F_SIZE, IMAP_SK_LARGER},	 {"smaller", F_SIZE, IMAP_SK_SMALLER},
	{"is", F_IS, IMAP_SK_ALL},		 {"folder", F_FOLDER, IMAP_SK_ALL},
};

/* The value v (taken; at offset at, in the term at offset start) of field f
   as a key; a folder: term goes to q->folders and gives no key (*out NULL). */
static gboolean make_key(struct parser *p, guint f, char *v, gsize start, gsize at,
			 gboolean allow_folder, struct imap_search_key **out)
{
	g_autofree char *val = v;
	struct imap_search_key *k;

	*out = NULL;
	switch (fields[f].kind) {
	case F_FOLDER:
		if (!allow_folder)
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, start,
				    "folder: is allowed only at the top level (not under or, "
				    "not, - or parentheses)");
		if (p->q->folders->len == 0)
			p->first_folder = start;
		g_ptr_array_add(p->q->folders, g_steal_pointer(&val));
		return TRUE;
	case F_IS:
		for (guint i = 0; i < G_N_ELEMENTS(is_values); i++)
			if (g_ascii_strcasecmp(val, is_values[i].name) == 0) {
				*out = imap_search_key_new(is_values[i].op);
				return TRUE;
			}
		return fail(p, SEARCH_QUERY_ERROR_SYNTAX, at, "unknown is: value \"%s\"", val);
	case F_KEYWORD:
		if (!is_atom(val))
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, at,
				    "keyword \"%s\" is not an IMAP atom", val);
		break;
	case F_DATE:
		k = imap_search_key_new(fields[f].op);
		if (!parse_date(val, k)) {
			imap_search_key_free(k);
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, at,
				    "\"%s\" is not a date (YYYY-MM-DD)", val);
		}
		*out = k;
		return TRUE;
	case F_SIZE:
		k = imap_search_key_new(fields[f].op);
		if (!parse_size(val, &k->num)) {
			imap_search_key_free(k);
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, at,
				    "\"%s\" is not a size (digits and K, M or G, at most 4G-1)",
				    val);
		}
		*out = k;
		return TRUE;
	case F_STRING:
		break;
	}
	k = imap_search_key_new(fields[f].op);
	k->str = g_steal_pointer(&val);
	*out = k;
	return TRUE;
}

static gboolean parse_term(struct parser *p, gboolean allow_folder, struct imap_search_key **out)
{
	gsize start = p->pos, name_end = p->pos;
	guint f = 0; /* text */
	char *v = NULL;

	if (++p->terms > SEARCH_QUERY_TERMS_MAX)
		return fail(p, SEARCH_QUERY_ERROR_LIMIT, start, "more than %d terms",
			    SEARCH_QUERY_TERMS_MAX);
	while (g_ascii_isalpha(p->text[name_end]))
		name_end++;
	if (name_end > start && p->text[name_end] == ':') {
		gsize n = name_end - start;

		for (f = 0; f < G_N_ELEMENTS(fields); f++)
			if (strlen(fields[f].name) == n &&
			    g_ascii_strncasecmp(fields[f].name, p->text + start, n) == 0)
				break;
		if (f == G_N_ELEMENTS(fields))
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, start,
				    "unknown field \"%.*s\" (quote the word to search for it)",
				    (int)n, p->text + start);
		p->pos = name_end + 1;
		if (ends_word(peek(p)))
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, start, "%s: needs a value",
				    fields[f].name);
	}
	gsize at = p->pos;
	if (!read_value(p, &v))
		return FALSE;
	return make_key(p, f, v, start, at, allow_folder, out);
}

/* -- expressions -------------------------------------------------------------- */

static gboolean parse_or(struct parser *p, gboolean top, struct imap_search_key **out);

static gboolean enter(struct parser *p, gsize at)
{
	if (++p->depth > SEARCH_QUERY_DEPTH_MAX)
		return fail(p, SEARCH_QUERY_ERROR_LIMIT, at,
			    "nested more than %d deep (parentheses and negations)",
			    SEARCH_QUERY_DEPTH_MAX);
	return TRUE;
}

static gboolean parse_unary(struct parser *p, gboolean allow_folder, struct imap_search_key **out)
{
	gsize start = p->pos;
	struct imap_search_key *kid = NULL;

	*out = NULL;
	if (peek(p) == '-' || at_word(p, "not")) {
		const char *op = peek(p) == '-' ? "-" : "not";

		p->pos += strlen(op);
		if (*op == 'n')
			skip_spaces(p);
		if (peek(p) == '\0' || peek(p) == ' ' || peek(p) == ')' || at_word(p, "or"))
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, start,
				    "nothing to negate after \"%s\"%s", op,
				    *op == 'n' ? " (quote it to search for the word)" : "");
		if (!enter(p, start) || !parse_unary(p, FALSE, &kid))
			return FALSE;
		p->depth--;
		*out = imap_search_key_new(IMAP_SK_NOT);
		g_ptr_array_add((*out)->kids, kid);
		return TRUE;
	}
	if (peek(p) == '(') {
		p->pos++;
		if (!enter(p, start) || !parse_or(p, FALSE, &kid))
			return FALSE;
		p->depth--;
		skip_spaces(p);
		if (peek(p) != ')') {
			imap_search_key_free(kid);
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, start, "unclosed \"(\"");
		}
		p->pos++;
		*out = kid;
		return TRUE;
	}
	return parse_term(p, allow_folder, out);
}

/* Keys in kids (taken) as one: the key itself, or an op node over them. */
static struct imap_search_key *join(enum imap_search_op op, GPtrArray *kids)
{
	struct imap_search_key *k;

	if (kids->len == 0) {
		g_ptr_array_unref(kids);
		return NULL;
	}
	if (kids->len == 1) {
		k = g_ptr_array_steal_index(kids, 0);
		g_ptr_array_unref(kids);
		return k;
	}
	k = imap_search_key_new(op);
	g_ptr_array_unref(k->kids);
	k->kids = kids;
	return k;
}

static GPtrArray *new_kids(void)
{
	return g_ptr_array_new_with_free_func((GDestroyNotify)imap_search_key_free);
}

/* unary *(unary), up to the end, ")" or "or"; *n counts the terms read
   (folder: terms included, which give no key). */
static gboolean parse_and(struct parser *p, gboolean top, struct imap_search_key **out, guint *n)
{
	GPtrArray *kids = new_kids();

	*n = 0;
	for (;;) {
		struct imap_search_key *k;

		skip_spaces(p);
		if (peek(p) == '\0' || peek(p) == ')' || at_word(p, "or"))
			break;
		if (!parse_unary(p, top, &k)) {
			g_ptr_array_unref(kids);
			return FALSE;
		}
		(*n)++;
		if (k)
			g_ptr_array_add(kids, k);
	}
	*out = join(IMAP_SK_AND, kids);
	return TRUE;
}

static gboolean parse_or(struct parser *p, gboolean top, struct imap_search_key **out)
{
	GPtrArray *kids = new_kids();
	gsize or_at = 0;
	gboolean after_or = FALSE;

	*out = NULL;
	for (;;) {
		struct imap_search_key *k;
		guint n;

		if (!parse_and(p, top, &k, &n))
			goto failed;
		/* Nothing read: "()" and a lone "or" are errors; an empty query, or
		   an unclosed "(" (reported by the caller), are not ours to refuse. */
		if (n == 0 && after_or) {
			fail(p, SEARCH_QUERY_ERROR_SYNTAX, or_at, "nothing after \"or\"");
			goto failed;
		}
		if (n == 0 && at_word(p, "or")) {
			fail(p, SEARCH_QUERY_ERROR_SYNTAX, p->pos, "nothing before \"or\"");
			goto failed;
		}
		if (n == 0 && !top && peek(p) == ')') {
			fail(p, SEARCH_QUERY_ERROR_SYNTAX, p->pos, "empty parentheses");
			goto failed;
		}
		if (k)
			g_ptr_array_add(kids, k);
		if (!at_word(p, "or"))
			break;
		or_at = p->pos;
		after_or = TRUE;
		p->pos += 2;
	}
	if (top && after_or && p->q->folders->len > 0) {
		fail(p, SEARCH_QUERY_ERROR_SYNTAX, p->first_folder,
		     "folder: is allowed only at the top level (not under or, not, - or "
		     "parentheses)");
		goto failed;
	}
	*out = join(IMAP_SK_OR, kids);
	return TRUE;
failed:
	g_ptr_array_unref(kids);
	return FALSE;
}

/* -- the query ---------------------------------------------------------------- */

/* One path component of valid UTF-8 without control characters. */
static gboolean check_text(struct parser *p)
{
	const char *end;
	gsize len = strlen(p->text);

	if (len > NAME_MAX)
		return fail(p, SEARCH_QUERY_ERROR_LIMIT, NAME_MAX, "longer than %d bytes", NAME_MAX);
	if (!g_utf8_validate(p->text, (gssize)len, &end))
		return fail(p, SEARCH_QUERY_ERROR_SYNTAX, (gsize)(end - p->text),
			    "not valid UTF-8");
	for (const char *c = p->text; *c; c += g_utf8_skip[*(const guchar *)c])
		if (g_unichar_iscntrl(g_utf8_get_char(c)))
			return fail(p, SEARCH_QUERY_ERROR_SYNTAX, (gsize)(c - p->text),
				    "a control character");
	return TRUE;
}

struct search_query *search_query_parse(const char *text, GError **err)
{
	struct search_query *q = g_new0(struct search_query, 1);
	struct parser p = {.text = text, .q = q, .err = err};

	q->folders = g_ptr_array_new_with_free_func(g_free);
	if (!check_text(&p) || !parse_or(&p, TRUE, &q->key)) {
		search_query_free(q);
		return NULL;
	}
	if (peek(&p) == ')') {
		fail(&p, SEARCH_QUERY_ERROR_SYNTAX, p.pos, "unmatched \")\"");
		search_query_free(q);
		return NULL;
	}
	return q;
}

void search_query_free(struct search_query *q)
{
	if (!q)
		return;
	imap_search_key_free(q->key);
	if (q->folders)
		g_ptr_array_unref(q->folders);
	g_free(q);
}
