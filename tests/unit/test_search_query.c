/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The .search query language (model/search_query.h) and SEARCH programs
 * (protocol/imap_search.h): every query of the tables is parsed and
 * rendered, and the display string (or the error) compared exactly.
 */
#include "model/search_query.h"
#include "protocol/imap_search.h"

#include <stdlib.h>
#include <string.h>

/* The display of the parsed query, "folders: a|b; " first when any, or
   "ERR: message" (with " [limit]" for a limit error). */
static char *outcome(const char *text)
{
	g_autoptr(GError) err = NULL;
	struct search_query *q = search_query_parse(text, &err);
	struct imap_search_text t;
	GString *out = g_string_new(NULL);

	if (!q) {
		g_assert_nonnull(err);
		g_assert_true(err->domain == SEARCH_QUERY_ERROR);
		g_string_append_printf(out, "ERR: %s%s", err->message,
				       err->code == SEARCH_QUERY_ERROR_LIMIT ? " [limit]" : "");
		return g_string_free(out, FALSE);
	}
	g_assert_null(err);
	if (q->folders->len) {
		g_string_append(out, "folders: ");
		for (guint i = 0; i < q->folders->len; i++)
			g_string_append_printf(out, "%s%s", i ? "|" : "",
					       (const char *)g_ptr_array_index(q->folders, i));
		g_string_append(out, "; ");
	}
	imap_search_render(q->key, FALSE, &t);
	g_string_append(out, t.display);
	imap_search_text_clear(&t);
	search_query_free(q);
	return g_string_free(out, FALSE);
}

static const struct {
	const char *in;
	const char *want;
} cases[] = {
	/* empty */
	{"", "ALL"},
	{"   ", "ALL"},
	/* bare words and phrases */
	{"hello", "TEXT \"hello\""},
	{"hello world", "TEXT \"hello\" TEXT \"world\""},
	{"  hello   world  ", "TEXT \"hello\" TEXT \"world\""},
	{"\"hello world\"", "TEXT \"hello world\""},
	{"\"a \\\"b\\\" c\"", "TEXT \"a \\\"b\\\" c\""},
	{"\"a\\\\b\"", "TEXT \"a\\\\b\""},
	{"a\\b", "TEXT \"a\\\\b\""},
	{"foo-bar", "TEXT \"foo-bar\""},
	{"10:30", "TEXT \"10:30\""},
	{"$x", "TEXT \"$x\""},
	{"\"or\" \"not\"", "TEXT \"or\" TEXT \"not\""},
	{"orange nothing", "TEXT \"orange\" TEXT \"nothing\""},
	{"\"a\"(b)", "TEXT \"a\" TEXT \"b\""},
	/* every field */
	{"text:x", "TEXT \"x\""},
	{"body:x", "BODY \"x\""},
	{"from:alice", "FROM \"alice\""},
	{"to:bob@example.org", "TO \"bob@example.org\""},
	{"cc:c", "CC \"c\""},
	{"bcc:d", "BCC \"d\""},
	{"subject:\"weekly report\"", "SUBJECT \"weekly report\""},
	{"FROM:x Subject:y", "FROM \"x\" SUBJECT \"y\""},
	{"from:a:b", "FROM \"a:b\""},
	{"keyword:$Work", "KEYWORD $Work"},
	{"keyword:Junk", "KEYWORD Junk"},
	{"raw:\"has:attachment larger:1M\"", "X-GM-RAW \"has:attachment larger:1M\""},
	{"since:2024-01-01", "SINCE 1-Jan-2024"},
	{"before:2023-12-31", "BEFORE 31-Dec-2023"},
	{"on:2024-02-29", "ON 29-Feb-2024"},
	{"on:0001-01-01", "ON 1-Jan-0001"},
	{"on:9999-12-31", "ON 31-Dec-9999"},
	{"since:\"2024-06-15\"", "SINCE 15-Jun-2024"},
	{"from:alice since:2024-01-01", "FROM \"alice\" SINCE 1-Jan-2024"},
	{"larger:0", "LARGER 0"},
	{"larger:100", "LARGER 100"},
	{"larger:10K", "LARGER 10240"},
	{"smaller:2m", "SMALLER 2097152"},
	{"larger:1G", "LARGER 1073741824"},
	{"larger:3G", "LARGER 3221225472"},
	{"larger:4095M", "LARGER 4293918720"},
	{"larger:4294967295", "LARGER 4294967295"},
	{"is:unread", "UNSEEN"},
	{"is:read", "SEEN"},
	{"is:flagged", "FLAGGED"},
	{"is:unflagged", "UNFLAGGED"},
	{"is:answered", "ANSWERED"},
	{"is:unanswered", "UNANSWERED"},
	{"is:draft", "DRAFT"},
	{"is:undraft", "UNDRAFT"},
	{"is:deleted", "DELETED"},
	{"is:undeleted", "UNDELETED"},
	{"IS:Unread", "UNSEEN"},
	/* folder: */
	{"folder:INBOX", "folders: INBOX; ALL"},
	{"folder:INBOX from:x", "folders: INBOX; FROM \"x\""},
	{"from:x folder:a folder:Work%2FProjects", "folders: a|Work%2FProjects; FROM \"x\""},
	{"folder:\"Sent Items\" is:unread", "folders: Sent Items; UNSEEN"},
	/* operators and precedence */
	{"from:a or from:b", "OR FROM \"a\" FROM \"b\""},
	{"from:a OR from:b", "OR FROM \"a\" FROM \"b\""},
	{"a b or c", "OR (TEXT \"a\" TEXT \"b\") TEXT \"c\""},
	{"a or b c", "OR TEXT \"a\" (TEXT \"b\" TEXT \"c\")"},
	{"a or b or c", "OR TEXT \"a\" (OR TEXT \"b\" TEXT \"c\")"},
	{"a or b or c or d", "OR TEXT \"a\" (OR TEXT \"b\" (OR TEXT \"c\" TEXT \"d\"))"},
	{"a (b or c)", "TEXT \"a\" OR TEXT \"b\" TEXT \"c\""},
	{"(a b) or (c d)", "OR (TEXT \"a\" TEXT \"b\") (TEXT \"c\" TEXT \"d\")"},
	{"((a))", "TEXT \"a\""},
	{"(a)(b)", "TEXT \"a\" TEXT \"b\""},
	{"-subject:x", "NOT SUBJECT \"x\""},
	{"not subject:x", "NOT SUBJECT \"x\""},
	{"NOT x", "NOT TEXT \"x\""},
	{"not   x", "NOT TEXT \"x\""},
	{"not(a b)", "NOT (TEXT \"a\" TEXT \"b\")"},
	{"-(a or b)", "NOT OR TEXT \"a\" TEXT \"b\""},
	{"--a", "NOT NOT TEXT \"a\""},
	{"-not a", "NOT NOT TEXT \"a\""},
	{"-\"two words\"", "NOT TEXT \"two words\""},
	{"a -b or c", "OR (TEXT \"a\" NOT TEXT \"b\") TEXT \"c\""},
	{"is:unread -is:deleted from:x or is:flagged",
	 "OR (UNSEEN NOT DELETED FROM \"x\") FLAGGED"},
	/* non-ASCII: the display shows the bytes */
	{"subject:naïve", "CHARSET UTF-8 SUBJECT \"naïve\""},
	{"Grüße", "CHARSET UTF-8 TEXT \"Grüße\""},
	{"a\u00a0b", "CHARSET UTF-8 TEXT \"a\u00a0b\""},

	/* errors, with their columns */
	{"\"abc", "ERR: column 1: unclosed quote"},
	{"a \"abc", "ERR: column 3: unclosed quote"},
	{"\"\"", "ERR: column 1: empty quoted string"},
	{"from:\"\"", "ERR: column 6: empty quoted string"},
	{"\"a\"b", "ERR: column 4: a space must follow the closing quote"},
	{"\"a\\x\"", "ERR: column 3: only \\\" and \\\\ are escapes in a quoted string"},
	{"ab\"c\"", "ERR: column 3: a quote inside a word (quote the whole value)"},
	{"frm:x", "ERR: column 1: unknown field \"frm\" (quote the word to search for it)"},
	{"hello frm:x", "ERR: column 7: unknown field \"frm\" (quote the word to search for it)"},
	{"http://x", "ERR: column 1: unknown field \"http\" (quote the word to search for it)"},
	{"from:", "ERR: column 1: from: needs a value"},
	{"a from: b", "ERR: column 3: from: needs a value"},
	{"from:(a)", "ERR: column 1: from: needs a value"},
	{"(a", "ERR: column 1: unclosed \"(\""},
	{"a (b (c)", "ERR: column 3: unclosed \"(\""},
	{"a)", "ERR: column 2: unmatched \")\""},
	{")", "ERR: column 1: unmatched \")\""},
	{"(a))", "ERR: column 4: unmatched \")\""},
	{"()", "ERR: column 2: empty parentheses"},
	{"a ( )", "ERR: column 5: empty parentheses"},
	{"or a", "ERR: column 1: nothing before \"or\""},
	{"a or", "ERR: column 3: nothing after \"or\""},
	{"a or or b", "ERR: column 3: nothing after \"or\""},
	{"(a or)", "ERR: column 4: nothing after \"or\""},
	{"-", "ERR: column 1: nothing to negate after \"-\""},
	{"a - b", "ERR: column 3: nothing to negate after \"-\""},
	{"(-)", "ERR: column 2: nothing to negate after \"-\""},
	{"not", "ERR: column 1: nothing to negate after \"not\" (quote it to search for the word)"},
	{"a not ", "ERR: column 3: nothing to negate after \"not\" (quote it to search for the word)"},
	{"not or a", "ERR: column 1: nothing to negate after \"not\" (quote it to search for the word)"},
	{"is:foo", "ERR: column 4: unknown is: value \"foo\""},
	{"is:seen", "ERR: column 4: unknown is: value \"seen\""},
	{"keyword:\\Seen", "ERR: column 9: keyword \"\\Seen\" is not an IMAP atom"},
	{"keyword:a*b", "ERR: column 9: keyword \"a*b\" is not an IMAP atom"},
	{"keyword:a]", "ERR: column 9: keyword \"a]\" is not an IMAP atom"},
	{"keyword:%", "ERR: column 9: keyword \"%\" is not an IMAP atom"},
	{"keyword:{1}", "ERR: column 9: keyword \"{1}\" is not an IMAP atom"},
	{"keyword:\"a b\"", "ERR: column 9: keyword \"a b\" is not an IMAP atom"},
	{"keyword:é", "ERR: column 9: keyword \"é\" is not an IMAP atom"},
	{"since:2023-02-29", "ERR: column 7: \"2023-02-29\" is not a date (YYYY-MM-DD)"},
	{"since:2024-02-30", "ERR: column 7: \"2024-02-30\" is not a date (YYYY-MM-DD)"},
	{"since:2024-13-01", "ERR: column 7: \"2024-13-01\" is not a date (YYYY-MM-DD)"},
	{"since:2024-00-10", "ERR: column 7: \"2024-00-10\" is not a date (YYYY-MM-DD)"},
	{"since:2024-1-1", "ERR: column 7: \"2024-1-1\" is not a date (YYYY-MM-DD)"},
	{"since:0000-01-01", "ERR: column 7: \"0000-01-01\" is not a date (YYYY-MM-DD)"},
	{"since:2024-01-01x", "ERR: column 7: \"2024-01-01x\" is not a date (YYYY-MM-DD)"},
	{"since:yesterday", "ERR: column 7: \"yesterday\" is not a date (YYYY-MM-DD)"},
	{"larger:4G", "ERR: column 8: \"4G\" is not a size (digits and K, M or G, at most 4G-1)"},
	{"larger:4294967296",
	 "ERR: column 8: \"4294967296\" is not a size (digits and K, M or G, at most 4G-1)"},
	{"larger:99999999999999999999999",
	 "ERR: column 8: \"99999999999999999999999\" is not a size (digits and K, M or G, at most 4G-1)"},
	{"larger:10KB", "ERR: column 8: \"10KB\" is not a size (digits and K, M or G, at most 4G-1)"},
	{"larger:K", "ERR: column 8: \"K\" is not a size (digits and K, M or G, at most 4G-1)"},
	{"larger:-1", "ERR: column 8: \"-1\" is not a size (digits and K, M or G, at most 4G-1)"},
	{"larger:1T", "ERR: column 8: \"1T\" is not a size (digits and K, M or G, at most 4G-1)"},
	/* folder: only in the top-level AND */
	{"folder:a or b",
	 "ERR: column 1: folder: is allowed only at the top level (not under or, not, - or parentheses)"},
	{"b or folder:a",
	 "ERR: column 6: folder: is allowed only at the top level (not under or, not, - or parentheses)"},
	{"-folder:a",
	 "ERR: column 2: folder: is allowed only at the top level (not under or, not, - or parentheses)"},
	{"not folder:a",
	 "ERR: column 5: folder: is allowed only at the top level (not under or, not, - or parentheses)"},
	{"(folder:a)",
	 "ERR: column 2: folder: is allowed only at the top level (not under or, not, - or parentheses)"},
	{"folder:", "ERR: column 1: folder: needs a value"},
	/* bytes */
	{"\xff", "ERR: column 1: not valid UTF-8"},
	{"ab\xc3", "ERR: column 3: not valid UTF-8"},
	{"a\tb", "ERR: column 2: a control character"},
	{"a\x7f", "ERR: column 2: a control character"},
	{"ab\xc2\x85", "ERR: column 3: a control character"},
	{"\"a\nb\"", "ERR: column 3: a control character"},
};

static void test_table(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = outcome(cases[i].in);

		if (g_strcmp0(got, cases[i].want) != 0)
			g_error("query <%s>:\n  got  <%s>\n  want <%s>", cases[i].in, got,
				cases[i].want);
	}
}

static void test_empty_is_null(void)
{
	struct search_query *q = search_query_parse("", NULL);

	g_assert_nonnull(q);
	g_assert_null(q->key);
	g_assert_cmpuint(q->folders->len, ==, 0);
	search_query_free(q);
	q = search_query_parse("folder:a folder:b", NULL);
	g_assert_nonnull(q);
	g_assert_null(q->key);
	g_assert_cmpuint(q->folders->len, ==, 2);
	search_query_free(q);
	search_query_free(NULL);
}

static void test_bounds(void)
{
	g_autoptr(GString) s = g_string_new(NULL);
	g_autofree char *got = NULL;

	/* 64 terms, then 65 */
	for (int i = 0; i < SEARCH_QUERY_TERMS_MAX; i++)
		g_string_append(s, i ? " a" : "a");
	got = outcome(s->str);
	g_assert_false(g_str_has_prefix(got, "ERR"));
	g_clear_pointer(&got, g_free);
	g_string_append(s, " b");
	got = outcome(s->str);
	g_assert_cmpstr(got, ==, "ERR: column 129: more than 64 terms [limit]");
	g_clear_pointer(&got, g_free);

	/* 16 levels, then 17 */
	g_string_truncate(s, 0);
	for (int i = 0; i < SEARCH_QUERY_DEPTH_MAX; i++)
		g_string_append_c(s, '(');
	g_string_append_c(s, 'a');
	for (int i = 0; i < SEARCH_QUERY_DEPTH_MAX; i++)
		g_string_append_c(s, ')');
	got = outcome(s->str);
	g_assert_cmpstr(got, ==, "TEXT \"a\"");
	g_clear_pointer(&got, g_free);
	g_string_prepend_c(s, '(');
	g_string_append_c(s, ')');
	got = outcome(s->str);
	g_assert_cmpstr(got, ==,
			"ERR: column 17: nested more than 16 deep (parentheses and negations) [limit]");
	g_clear_pointer(&got, g_free);

	/* negations count as levels */
	g_string_truncate(s, 0);
	for (int i = 0; i < SEARCH_QUERY_DEPTH_MAX; i++)
		g_string_append_c(s, '-');
	g_string_append_c(s, 'a');
	got = outcome(s->str);
	g_assert_true(g_str_has_prefix(got, "NOT NOT "));
	g_clear_pointer(&got, g_free);
	g_string_prepend_c(s, '-');
	got = outcome(s->str);
	g_assert_cmpstr(got, ==,
			"ERR: column 17: nested more than 16 deep (parentheses and negations) [limit]");
	g_clear_pointer(&got, g_free);

	/* one path component: 255 bytes, then 256 */
	g_string_truncate(s, 0);
	g_string_append(s, "subject:");
	while (s->len < 255)
		g_string_append_c(s, 'x');
	got = outcome(s->str);
	g_assert_true(g_str_has_prefix(got, "SUBJECT \"xxx"));
	g_clear_pointer(&got, g_free);
	g_string_append_c(s, 'x');
	got = outcome(s->str);
	g_assert_cmpstr(got, ==, "ERR: column 256: longer than 255 bytes [limit]");
}

/* -- rendering ------------------------------------------------------------------ */

static void assert_part(const struct imap_search_text *t, guint i, gboolean literal,
			const char *data)
{
	const struct imap_part *p;

	g_assert_cmpuint(i, <, t->parts->len);
	p = &g_array_index(t->parts, struct imap_part, i);
	g_assert_cmpint(p->literal, ==, literal);
	g_assert_cmpuint(p->len, ==, strlen(data));
	g_assert_true(memcmp(p->data, data, p->len) == 0);
}

static void render_query(const char *text, gboolean return_all, struct imap_search_text *t)
{
	struct search_query *q = search_query_parse(text, NULL);

	g_assert_nonnull(q);
	imap_search_render(q->key, return_all, t);
	search_query_free(q);
}

static void test_render_parts(void)
{
	struct imap_search_text t;

	render_query("from:alice since:2024-01-01", FALSE, &t);
	g_assert_cmpuint(t.parts->len, ==, 1);
	assert_part(&t, 0, FALSE, "FROM \"alice\" SINCE 1-Jan-2024");
	g_assert_cmpstr(t.display, ==, "FROM \"alice\" SINCE 1-Jan-2024");
	imap_search_text_clear(&t);

	render_query("from:alice", TRUE, &t);
	g_assert_cmpuint(t.parts->len, ==, 1);
	assert_part(&t, 0, FALSE, "RETURN (ALL) FROM \"alice\"");
	g_assert_cmpstr(t.display, ==, "RETURN (ALL) FROM \"alice\"");
	imap_search_text_clear(&t);

	/* a non-ASCII string is a literal; the text around it keeps its spaces */
	render_query("subject:naïve", FALSE, &t);
	g_assert_cmpuint(t.parts->len, ==, 2);
	assert_part(&t, 0, FALSE, "CHARSET UTF-8 SUBJECT ");
	assert_part(&t, 1, TRUE, "naïve");
	g_assert_cmpuint(g_array_index(t.parts, struct imap_part, 1).len, ==, 6);
	g_assert_cmpstr(t.display, ==, "CHARSET UTF-8 SUBJECT \"naïve\"");
	imap_search_text_clear(&t);

	render_query("subject:naïve or from:\"x\\\"y\" -body:Ärger", TRUE, &t);
	g_assert_cmpuint(t.parts->len, ==, 5);
	assert_part(&t, 0, FALSE, "RETURN (ALL) CHARSET UTF-8 OR SUBJECT ");
	assert_part(&t, 1, TRUE, "naïve");
	assert_part(&t, 2, FALSE, " (FROM \"x\\\"y\" NOT BODY ");
	assert_part(&t, 3, TRUE, "Ärger");
	assert_part(&t, 4, FALSE, ")");
	g_assert_cmpstr(t.display, ==,
			"RETURN (ALL) CHARSET UTF-8 OR SUBJECT \"naïve\" (FROM \"x\\\"y\" NOT BODY "
			"\"Ärger\")");
	imap_search_text_clear(&t);

	/* no program: ALL */
	imap_search_render(NULL, TRUE, &t);
	g_assert_cmpuint(t.parts->len, ==, 1);
	assert_part(&t, 0, FALSE, "RETURN (ALL) ALL");
	g_assert_cmpstr(t.display, ==, "RETURN (ALL) ALL");
	imap_search_text_clear(&t);
	imap_search_text_clear(&t); /* cleared twice is fine */
}

static void test_keys(void)
{
	struct imap_search_key *a = imap_search_key_new(IMAP_SK_FROM);
	struct imap_search_key *b = imap_search_key_new(IMAP_SK_X_GM_RAW);
	struct imap_search_key *k, *n;
	struct imap_search_text t;

	a->str = g_strdup("a");
	b->str = g_strdup("has:attachment");
	k = imap_search_key_pair(IMAP_SK_OR, a, b);
	n = imap_search_key_new(IMAP_SK_NOT);
	g_ptr_array_add(n->kids, k);
	g_assert_true(imap_search_key_uses(n, IMAP_SK_X_GM_RAW));
	g_assert_true(imap_search_key_uses(n, IMAP_SK_FROM));
	g_assert_true(imap_search_key_uses(n, IMAP_SK_NOT));
	g_assert_false(imap_search_key_uses(n, IMAP_SK_TEXT));
	g_assert_false(imap_search_key_uses(NULL, IMAP_SK_TEXT));
	imap_search_render(n, FALSE, &t);
	g_assert_cmpstr(t.display, ==, "NOT OR FROM \"a\" X-GM-RAW \"has:attachment\"");
	imap_search_text_clear(&t);

	/* an AND under a pair is parenthesised */
	k = imap_search_key_pair(IMAP_SK_AND, imap_search_key_new(IMAP_SK_SEEN),
				 imap_search_key_new(IMAP_SK_FLAGGED));
	k = imap_search_key_pair(IMAP_SK_OR, k, imap_search_key_new(IMAP_SK_DRAFT));
	imap_search_render(k, FALSE, &t);
	g_assert_cmpstr(t.display, ==, "OR (SEEN FLAGGED) DRAFT");
	imap_search_text_clear(&t);
	imap_search_key_free(k);
	imap_search_key_free(n);
	imap_search_key_free(NULL);

	struct search_query *q = search_query_parse("a or raw:x", NULL);
	g_assert_true(imap_search_key_uses(q->key, IMAP_SK_X_GM_RAW));
	search_query_free(q);
	q = search_query_parse("a -from:b", NULL);
	g_assert_false(imap_search_key_uses(q->key, IMAP_SK_X_GM_RAW));
	search_query_free(q);
}

/* -- answers --------------------------------------------------------------------- */

static void on_response(void *ud, struct imap_response *r)
{
	g_ptr_array_add(ud, r);
}

/* The one response in line, parsed. */
static struct imap_response *parse_one(const char *line)
{
	const struct imap_parser_callbacks cb = {.response = on_response};
	g_autoptr(GPtrArray) got = g_ptr_array_new();
	struct imap_parser *p = imap_parser_new(NULL, &cb, got);
	struct imap_response *r;

	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), NULL), ==, (gssize)strlen(line));
	imap_parser_free(p);
	g_assert_cmpuint(got->len, ==, 1);
	r = g_ptr_array_index(got, 0);
	return r;
}

/* "TRUE: 1,2,3" or "FALSE: ..." with what uids holds afterwards. */
static char *collect(const char *line, guint max, const char *before)
{
	struct imap_response *r = parse_one(line);
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	GString *out = g_string_new(NULL);
	gboolean ok;

	if (before) {
		guint32 u = (guint32)atoi(before);

		g_array_append_val(uids, u);
	}
	ok = imap_search_collect(r, uids, max);
	g_string_append(out, ok ? "TRUE:" : "FALSE:");
	for (guint i = 0; i < uids->len; i++)
		g_string_append_printf(out, "%s%u", i ? "," : " ", g_array_index(uids, guint32, i));
	imap_response_free(r);
	return g_string_free(out, FALSE);
}

static void test_collect(void)
{
	static const struct {
		const char *line;
		guint max;
		const char *before; /* a UID already in the array, or NULL */
		const char *want;
	} c[] = {
		{"* SEARCH 2 5 9\r\n", 100, NULL, "TRUE: 2,5,9"},
		{"* SEARCH\r\n", 100, NULL, "TRUE:"},
		{"* search 4\r\n", 100, NULL, "TRUE: 4"},
		{"* SEARCH 1 2 (MODSEQ 917162500)\r\n", 100, NULL, "TRUE: 1,2"},
		{"* SEARCH 1 2 3 4\r\n", 2, NULL, "TRUE: 1,2"},
		{"* SEARCH 1 2 3\r\n", 3, "99", "TRUE: 99,1,2"},
		{"* SEARCH 1 x 3\r\n", 100, "99", "FALSE: 99"},
		{"* SEARCH 1 0\r\n", 100, NULL, "FALSE:"},
		{"* SEARCH 1 4294967296\r\n", 100, NULL, "FALSE:"},
		{"* SEARCH 1 (MODSEQ 1) 2\r\n", 100, NULL, "FALSE:"},
		{"* ESEARCH (TAG \"A5\") UID ALL 1:3,7\r\n", 100, NULL, "TRUE: 1,2,3,7"},
		{"* ESEARCH (TAG \"A5\") UID\r\n", 100, NULL, "TRUE:"},
		{"* ESEARCH UID ALL 4\r\n", 100, NULL, "TRUE: 4"},
		{"* ESEARCH (TAG \"A5\") uid COUNT 3 ALL 7,4:5 MIN 4 MAX 7\r\n", 100, NULL,
		 "TRUE: 4,5,7"},
		{"* ESEARCH (TAG \"A5\") UID ALL 1:4294967295\r\n", 5, NULL, "TRUE: 1,2,3,4,5"},
		{"* ESEARCH (TAG \"A5\") UID ALL 10:12\r\n", 2, "1", "TRUE: 1,10"},
		{"* ESEARCH (TAG \"A5\") ALL 1:3\r\n", 100, NULL, "FALSE:"},
		{"* ESEARCH (TAG \"A5\") UID ALL 1:*\r\n", 100, NULL, "FALSE:"},
		{"* ESEARCH (TAG \"A5\") UID ALL 0:3\r\n", 100, NULL, "FALSE:"},
		{"* ESEARCH (TAG \"A5\") UID ALL\r\n", 100, NULL, "FALSE:"},
		{"* ESEARCH (TAG \"A5\") UID ALL (1)\r\n", 100, NULL, "FALSE:"},
		{"* ESEARCH\r\n", 100, NULL, "FALSE:"},
		{"* 3 EXISTS\r\n", 100, NULL, "FALSE:"},
		{"* 3 SEARCH\r\n", 100, NULL, "FALSE:"},
		{"* OK [UIDNEXT 4] x\r\n", 100, NULL, "FALSE:"},
		{"* FLAGS (\\Seen)\r\n", 100, NULL, "FALSE:"},
		{"A1 OK SEARCH completed\r\n", 100, NULL, "FALSE:"},
		{"+ go on\r\n", 100, NULL, "FALSE:"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(c); i++) {
		g_autofree char *got = collect(c[i].line, c[i].max, c[i].before);

		if (g_strcmp0(got, c[i].want) != 0)
			g_error("response <%s>:\n  got  <%s>\n  want <%s>", c[i].line, got,
				c[i].want);
	}
	g_assert_false(imap_search_collect(NULL, NULL, 0));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/search_query/table", test_table);
	g_test_add_func("/search_query/empty", test_empty_is_null);
	g_test_add_func("/search_query/bounds", test_bounds);
	g_test_add_func("/imap_search/render_parts", test_render_parts);
	g_test_add_func("/imap_search/keys", test_keys);
	g_test_add_func("/imap_search/collect", test_collect);
	return g_test_run();
}
