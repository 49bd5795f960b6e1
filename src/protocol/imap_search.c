/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/imap_search.h"

#include "protocol/uidset.h"

#include <string.h>

/* -- the key tree ------------------------------------------------------------ */

static gboolean is_inner(enum imap_search_op op)
{
	return op == IMAP_SK_AND || op == IMAP_SK_OR || op == IMAP_SK_NOT;
}

struct imap_search_key *imap_search_key_new(enum imap_search_op op)
{
	struct imap_search_key *k = g_new0(struct imap_search_key, 1);

	k->op = op;
	if (is_inner(op))
		k->kids = g_ptr_array_new_with_free_func((GDestroyNotify)imap_search_key_free);
	return k;
}

void imap_search_key_free(struct imap_search_key *k)
{
	if (!k)
		return;
	if (k->kids)
		g_ptr_array_unref(k->kids);
	g_free(k->str);
	g_free(k);
}

struct imap_search_key *imap_search_key_pair(enum imap_search_op op, struct imap_search_key *a,
					     struct imap_search_key *b)
{
	struct imap_search_key *k = imap_search_key_new(op);

	g_ptr_array_add(k->kids, a);
	g_ptr_array_add(k->kids, b);
	return k;
}

gboolean imap_search_key_uses(const struct imap_search_key *k, enum imap_search_op op)
{
	if (!k)
		return FALSE;
	if (k->op == op)
		return TRUE;
	for (guint i = 0; k->kids && i < k->kids->len; i++)
		if (imap_search_key_uses(g_ptr_array_index(k->kids, i), op))
			return TRUE;
	return FALSE;
}

/* -- rendering ----------------------------------------------------------------- */

static gboolean is_ascii(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p >= 0x80)
			return FALSE;
	return TRUE;
}

static gboolean any_non_ascii(const struct imap_search_key *k)
{
	if (!k)
		return FALSE;
	if (k->str && !is_ascii(k->str))
		return TRUE;
	for (guint i = 0; k->kids && i < k->kids->len; i++)
		if (any_non_ascii(g_ptr_array_index(k->kids, i)))
			return TRUE;
	return FALSE;
}

/* The rendering under way: text not yet made a part, and the parts so far. */
struct render {
	struct imap_search_text *out;
	GString *text; /* pending text part */
	GString *display;
};

static void append_text(struct render *r, const char *s)
{
	g_string_append(r->text, s);
	g_string_append(r->display, s);
}

static void flush_text(struct render *r)
{
	struct imap_part p = {FALSE, NULL, 0};
	char *owned;

	if (r->text->len == 0)
		return;
	owned = g_strndup(r->text->str, r->text->len);
	g_ptr_array_add(r->out->strings, owned);
	p.data = owned;
	p.len = r->text->len;
	g_array_append_val(r->out->parts, p);
	g_string_truncate(r->text, 0);
}

/* A string argument: quoted when it can be, else a literal part. The display
   shows either as a quoted string with the bytes as they are. */
static void append_string(struct render *r, const char *s)
{
	g_autofree char *q = imap_quote(s);

	if (q) {
		g_string_append(r->text, q);
	} else {
		char *owned = g_strdup(s);
		struct imap_part p = {TRUE, owned, strlen(s)};

		flush_text(r);
		g_ptr_array_add(r->out->strings, owned);
		g_array_append_val(r->out->parts, p);
	}
	g_string_append_c(r->display, '"');
	for (const char *c = s; *c; c++) {
		if (*c == '"' || *c == '\\')
			g_string_append_c(r->display, '\\');
		g_string_append_c(r->display, *c);
	}
	g_string_append_c(r->display, '"');
}

static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The search-key word of a leaf op; NULL for AND, OR, NOT. */
static const char *const op_words[] = {
	[IMAP_SK_TEXT] = "TEXT",
	[IMAP_SK_BODY] = "BODY",
	[IMAP_SK_FROM] = "FROM",
	[IMAP_SK_TO] = "TO",
	[IMAP_SK_CC] = "CC",
	[IMAP_SK_BCC] = "BCC",
	[IMAP_SK_SUBJECT] = "SUBJECT",
	[IMAP_SK_KEYWORD] = "KEYWORD",
	[IMAP_SK_X_GM_RAW] = "X-GM-RAW",
	[IMAP_SK_SINCE] = "SINCE",
	[IMAP_SK_BEFORE] = "BEFORE",
	[IMAP_SK_ON] = "ON",
	[IMAP_SK_LARGER] = "LARGER",
	[IMAP_SK_SMALLER] = "SMALLER",
	[IMAP_SK_ALL] = "ALL",
	[IMAP_SK_SEEN] = "SEEN",
	[IMAP_SK_UNSEEN] = "UNSEEN",
	[IMAP_SK_FLAGGED] = "FLAGGED",
	[IMAP_SK_UNFLAGGED] = "UNFLAGGED",
	[IMAP_SK_ANSWERED] = "ANSWERED",
	[IMAP_SK_UNANSWERED] = "UNANSWERED",
	[IMAP_SK_DRAFT] = "DRAFT",
	[IMAP_SK_UNDRAFT] = "UNDRAFT",
	[IMAP_SK_DELETED] = "DELETED",
	[IMAP_SK_UNDELETED] = "UNDELETED",
};

static const char *op_word(enum imap_search_op op)
{
	return (gsize)op < G_N_ELEMENTS(op_words) ? op_words[op] : NULL;
}

static void render_key(struct render *r, const struct imap_search_key *k, gboolean top);

/* kids[from..] as the OR of them: "OR a b", "OR a (OR b c)". */
static void render_or(struct render *r, const struct imap_search_key *k, guint from)
{
	guint left = k->kids->len - from;

	if (left == 1) {
		render_key(r, g_ptr_array_index(k->kids, from), FALSE);
		return;
	}
	append_text(r, "OR ");
	render_key(r, g_ptr_array_index(k->kids, from), FALSE);
	append_text(r, " ");
	if (left > 2)
		append_text(r, "(");
	render_or(r, k, from + 1);
	if (left > 2)
		append_text(r, ")");
}

static void render_key(struct render *r, const struct imap_search_key *k, gboolean top)
{
	const char *word = op_word(k->op);
	guint n = k->kids ? k->kids->len : 0;
	char buf[64];

	switch (k->op) {
	case IMAP_SK_AND:
		if (n == 0) {
			append_text(r, "ALL");
			return;
		}
		if (n == 1) {
			render_key(r, g_ptr_array_index(k->kids, 0), top);
			return;
		}
		if (!top)
			append_text(r, "(");
		for (guint i = 0; i < n; i++) {
			if (i)
				append_text(r, " ");
			render_key(r, g_ptr_array_index(k->kids, i), FALSE);
		}
		if (!top)
			append_text(r, ")");
		return;
	case IMAP_SK_OR:
		if (n == 0)
			/* an OR of nothing matches nothing: NOT ALL */
			append_text(r, "NOT ALL");
		else
			render_or(r, k, 0);
		return;
	case IMAP_SK_NOT:
		append_text(r, "NOT ");
		if (n == 0)
			append_text(r, "ALL");
		else
			render_key(r, g_ptr_array_index(k->kids, 0), FALSE);
		return;
	case IMAP_SK_TEXT:
	case IMAP_SK_BODY:
	case IMAP_SK_FROM:
	case IMAP_SK_TO:
	case IMAP_SK_CC:
	case IMAP_SK_BCC:
	case IMAP_SK_SUBJECT:
	case IMAP_SK_X_GM_RAW:
		append_text(r, word);
		append_text(r, " ");
		append_string(r, k->str ? k->str : "");
		return;
	case IMAP_SK_KEYWORD:
		/* an atom, checked by the parser */
		append_text(r, "KEYWORD ");
		append_text(r, k->str ? k->str : "");
		return;
	case IMAP_SK_SINCE:
	case IMAP_SK_BEFORE:
	case IMAP_SK_ON:
		g_snprintf(buf, sizeof(buf), "%s %d-%s-%04d", word, k->day,
			   months[CLAMP(k->month, 1, 12) - 1], k->year);
		append_text(r, buf);
		return;
	case IMAP_SK_LARGER:
	case IMAP_SK_SMALLER:
		g_snprintf(buf, sizeof(buf), "%s %" G_GUINT64_FORMAT, word, k->num);
		append_text(r, buf);
		return;
	default:
		append_text(r, word ? word : "ALL");
		return;
	}
}

void imap_search_render(const struct imap_search_key *k, gboolean return_all,
			struct imap_search_text *out)
{
	struct render r;

	out->strings = g_ptr_array_new_with_free_func(g_free);
	out->parts = g_array_new(FALSE, FALSE, sizeof(struct imap_part));
	r.out = out;
	r.text = g_string_new(NULL);
	r.display = g_string_new(NULL);
	if (return_all)
		append_text(&r, "RETURN (ALL) ");
	if (any_non_ascii(k))
		append_text(&r, "CHARSET UTF-8 ");
	if (k)
		render_key(&r, k, TRUE);
	else
		append_text(&r, "ALL");
	flush_text(&r);
	g_string_free(r.text, TRUE);
	out->display = g_string_free(r.display, FALSE);
}

void imap_search_text_clear(struct imap_search_text *t)
{
	if (!t)
		return;
	if (t->strings)
		g_ptr_array_unref(t->strings);
	if (t->parts)
		g_array_unref(t->parts);
	g_free(t->display);
	memset(t, 0, sizeof(*t));
}

/* -- answers ------------------------------------------------------------------ */

/* "* SEARCH 2 5 9" (a CONDSTORE "(MODSEQ n)" at the end is skipped). */
static gboolean collect_search(const struct imap_response *r, GArray *uids, guint max)
{
	guint start = uids->len;

	for (size_t i = 0; i < r->args.n; i++) {
		const struct imap_value *v = &r->args.items[i];
		guint32 uid;

		if (v->type == IMAP_V_LIST && i == r->args.n - 1)
			break;
		if (!imap_value_u32(v, &uid) || uid == 0) {
			g_array_set_size(uids, start);
			return FALSE;
		}
		if (uids->len < max)
			g_array_append_val(uids, uid);
	}
	return TRUE;
}

/* "* ESEARCH [(TAG "x")] UID *(name SP value)", the UIDs in ALL. */
static gboolean collect_esearch(const struct imap_response *r, GArray *uids, guint max)
{
	const struct imap_value *a = r->args.items;
	size_t n = r->args.n, i = 0;
	const char *set = NULL;

	if (i < n && a[i].type == IMAP_V_LIST)
		i++; /* search-correlator: the caller matches tags if it cares */
	if (i >= n || !imap_value_is_atom(&a[i], "UID"))
		return FALSE;
	for (i++; i < n; i += 2) {
		if (a[i].type != IMAP_V_ATOM || i + 1 >= n)
			return FALSE;
		if (imap_value_is_atom(&a[i], "ALL")) {
			set = imap_value_str(&a[i + 1]);
			if (!set || a[i + 1].type != IMAP_V_ATOM)
				return FALSE;
		}
	}
	if (!set)
		return TRUE; /* no match: RFC 4731 leaves ALL out */

	g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(struct uid_range));
	/* The set's length is bounded by the parser's line limit, so are its ranges. */
	if (!uidset_parse(set, 0, G_MAXUINT, ranges))
		return FALSE;
	for (guint j = 0; j < ranges->len && uids->len < max; j++) {
		const struct uid_range *rg = &g_array_index(ranges, struct uid_range, j);

		for (guint64 u = rg->lo; u <= rg->hi && uids->len < max; u++) {
			guint32 uid = (guint32)u;

			g_array_append_val(uids, uid);
		}
	}
	return TRUE;
}

gboolean imap_search_collect(const struct imap_response *r, GArray *uids, guint max)
{
	if (!r || r->type != IMAP_RESP_UNTAGGED || r->has_number || !r->keyword)
		return FALSE;
	if (strcmp(r->keyword, "SEARCH") == 0)
		return collect_search(r, uids, max);
	if (strcmp(r->keyword, "ESEARCH") == 0)
		return collect_esearch(r, uids, max);
	return FALSE;
}
