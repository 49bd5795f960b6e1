/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/headers.h"

#include <glib.h>
#include <string.h>

#define UE "\xc3\xbc" /* ü */
#define OE "\xc3\xb6" /* ö */

/* Expected values; NULL: field absent. */
struct expect {
	const char *subject, *from, *to, *date, *message_id;
};

static const struct {
	const char *name;
	const char *in;
	struct expect want;
} vectors[] = {
	{ "plain",
	  "Subject: Meeting notes\r\n"
	  "From: Alice <alice@example.org>\r\n"
	  "To: bob@example.org\r\n"
	  "Date: Tue, 1 Apr 2025 10:00:00 +0200\r\n"
	  "Message-ID: <abc.123@example.org>\r\n"
	  "\r\n",
	  { "Meeting notes", "Alice <alice@example.org>", "bob@example.org",
	    "Tue, 1 Apr 2025 10:00:00 +0200", "<abc.123@example.org>" } },
	{ "names are case-insensitive, blank before colon",
	  "SUBJECT: a\r\nfrom: x@example.org\r\nmessage-id : <m@x>\r\nDATE:   d  \r\n\r\n",
	  { "a", "x@example.org", NULL, "d", "<m@x>" } },
	{ "folded subject",
	  "Subject: line one\r\n line two\r\n\tline three\r\n\r\n",
	  { "line one line two\tline three", NULL, NULL, NULL, NULL } },
	{ "folded message-id",
	  "Message-ID:\r\n <folded@example.org>\r\n\r\n",
	  { NULL, NULL, NULL, NULL, "<folded@example.org>" } },
	{ "utf-8 base64",
	  "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\r\n",
	  { "Gr" UE "\xc3\x9f" "e", NULL, NULL, NULL, NULL } },
	{ "latin-1 q",
	  "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n\r\n",
	  { "Gr" UE "\xc3\x9f" "e aus K" OE "ln", NULL, NULL, NULL, NULL } },
	{ "iso-2022-jp",
	  "Subject: =?ISO-2022-JP?B?GyRCJEskWyRzGyhC?=\r\n\r\n",
	  { "\xe3\x81\xab\xe3\x81\xbb\xe3\x82\x93", NULL, NULL, NULL, NULL } },
	{ "adjacent encoded words, folded",
	  "Subject: =?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?= c\r\n\r\n",
	  { "ab c", NULL, NULL, NULL, NULL } },
	{ "encoded display name",
	  "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.org>\r\n\r\n",
	  { NULL, "J" OE "rg M" UE "ller <joerg@example.org>", NULL, NULL, NULL } },
	{ "several addresses, folded",
	  "To: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.org>,\r\n"
	  " bob@example.org, \"Carol C.\" <carol@example.org>\r\n\r\n",
	  { NULL, NULL,
	    "J" OE "rg M" UE "ller <joerg@example.org>, bob@example.org, "
	    "\"Carol C.\" <carol@example.org>",
	    NULL, NULL } },
	{ "missing fields",
	  "X-Other: y\r\nSubject: only\r\n\r\n",
	  { "only", NULL, NULL, NULL, NULL } },
	{ "present but empty",
	  "Subject:\r\nTo:   \r\n\r\n",
	  { "", NULL, "", NULL, NULL } },
	{ "repeated field: first wins",
	  "Subject: first\r\n second\r\nFrom: a@example.org\r\nSubject: third\r\n"
	  "From: b@example.org\r\n\r\n",
	  { "first second", "a@example.org", NULL, NULL, NULL } },
	{ "raw utf-8",
	  "Subject: Gr" UE "\xc3\x9f" "e\r\nFrom: J" OE "rg <j@example.org>\r\n\r\n",
	  { "Gr" UE "\xc3\x9f" "e", "J" OE "rg <j@example.org>", NULL, NULL, NULL } },
	{ "raw latin-1",
	  "Subject: Gr\xfc\xdf" "e\r\nDate: \xfc\r\nMessage-ID: <\xff@x>\r\n\r\n",
	  { "Gr" UE "\xc3\x9f" "e", NULL, NULL, "\xef\xbf\xbd", "<\xef\xbf\xbd@x>" } },
	{ "control characters stripped",
	  "Subject: a\x01" "b\x1b[31mc\x7f" "d\re\tf\r\n\r\n",
	  { "ab[31mcde\tf", NULL, NULL, NULL, NULL } },
	{ "encoded control characters stripped",
	  "Subject: =?UTF-8?Q?x=00y=07z=C2=9B1m?=\r\n\r\n",
	  /* GMime itself turns an encoded NUL into '?' */
	  { "x?yz1m", NULL, NULL, NULL, NULL } },
	/* GMime writes '?' for what it cannot convert (unlike names.c's fallbacks) */
	{ "unknown charset, bad utf-8 in a word",
	  "Subject: =?x-unknown?Q?Gr=FC=DFe?= =?UTF-8?Q?bad=FF=FEx?=\r\n\r\n",
	  { "Gr??ebad??x", NULL, NULL, NULL, NULL } },
	{ "raw windows-1252",
	  "Subject: \x9a" "alom\r\n\r\n",
	  { "\xc5\xa1" "alom", NULL, NULL, NULL, NULL } },
	{ "lf-only line ends",
	  "Subject: one\n two\nTo: a@example.org\nMessage-Id: <x@y>\n\n",
	  { "one two", NULL, "a@example.org", NULL, "<x@y>" } },
	{ "no final newline, no blank line",
	  "Subject: tail",
	  { "tail", NULL, NULL, NULL, NULL } },
	{ "stops at the blank line",
	  "Subject: head\r\n\r\nDate: body\r\n",
	  { "head", NULL, NULL, NULL, NULL } },
	{ "garbage lines skipped, continuation after garbage ignored",
	  "no colon here\r\n continued\r\n: no name\r\nSubject: ok\r\n\r\n",
	  { "ok", NULL, NULL, NULL, NULL } },
	{ "leading continuation line",
	  " orphan\r\nDate: d\r\n\r\n",
	  { NULL, NULL, NULL, "d", NULL } },
	{ "nonsense address list falls back to text",
	  "From: =?UTF-8?Q?J=C3=B6rg?=\r\n\r\n",
	  { NULL, "J" OE "rg", NULL, NULL, NULL } },
	{ "empty input", "", { NULL, NULL, NULL, NULL, NULL } },
};

static void check(const char *what, const char *field, const char *got, const char *want)
{
	if (g_strcmp0(got, want) != 0)
		g_error("%s: %s: got '%s', want '%s'", what, field, got ? got : "(null)",
			want ? want : "(null)");
}

static void assert_sane(const struct mail_headers *h)
{
	const char *v[] = { h->subject, h->from, h->to, h->date, h->message_id };

	for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
		if (!v[i])
			continue;
		g_assert_true(g_utf8_validate(v[i], -1, NULL));
		g_assert_cmpuint(strlen(v[i]), <=, MAIL_HEADERS_VALUE_MAX);
		for (const char *p = v[i]; *p; p += g_utf8_skip[(guchar)*p]) {
			gunichar c = g_utf8_get_char(p);

			g_assert_false((c < 0x20 && c != '\t') || (c >= 0x7f && c <= 0x9f));
		}
	}
}

static void test_vectors(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(vectors); i++) {
		struct mail_headers h = { 0 };
		const struct expect *w = &vectors[i].want;

		mail_headers_parse(vectors[i].in, strlen(vectors[i].in), &h);
		check(vectors[i].name, "subject", h.subject, w->subject);
		check(vectors[i].name, "from", h.from, w->from);
		check(vectors[i].name, "to", h.to, w->to);
		check(vectors[i].name, "date", h.date, w->date);
		check(vectors[i].name, "message_id", h.message_id, w->message_id);
		assert_sane(&h);
		mail_headers_clear(&h);
		mail_headers_clear(&h);
		g_assert_null(h.subject);
	}
}

/* The input need not be NUL-terminated, and may hold NUL bytes. */
static void test_lengths(void)
{
	static const char in[] = "Subject: a\0b\r\nDate: x\r\nTo: cut";
	struct mail_headers h = { 0 };

	mail_headers_parse(in, sizeof(in) - 1, &h);
	g_assert_cmpstr(h.subject, ==, "ab");
	g_assert_cmpstr(h.date, ==, "x");
	g_assert_cmpstr(h.to, ==, "cut");
	mail_headers_clear(&h);

	/* Only the first 12 bytes: the Date line is not seen. */
	mail_headers_parse(in, 12, &h);
	g_assert_cmpstr(h.subject, ==, "ab");
	g_assert_null(h.date);
	mail_headers_clear(&h);

	mail_headers_parse(NULL, 0, &h);
	g_assert_null(h.subject);
	mail_headers_clear(&h);
}

static void test_cap(void)
{
	GString *in = g_string_new("Subject: ");
	struct mail_headers h = { 0 };

	/* 100 KB of two-byte characters, folded every 70 bytes. */
	for (size_t i = 0; i < 100 * 1024 / 70; i++)
		g_string_append(in, UE UE UE UE UE UE UE UE UE UE UE UE UE UE UE UE UE UE UE
				    UE UE UE UE UE UE UE UE UE UE UE UE UE UE UE "\r\n ");
	g_string_append(in, "\r\nDate: after\r\n\r\n");
	mail_headers_parse(in->str, in->len, &h);
	g_assert_nonnull(h.subject);
	g_assert_true(g_utf8_validate(h.subject, -1, NULL));
	g_assert_cmpuint(strlen(h.subject), <=, MAIL_HEADERS_VALUE_MAX);
	g_assert_cmpuint(strlen(h.subject), >=, MAIL_HEADERS_VALUE_MAX - 3);
	g_assert_true(g_str_has_prefix(h.subject, UE UE));
	g_assert_cmpstr(h.date, ==, "after");
	mail_headers_clear(&h);

	/* One 100 KB encoded word, and a 100 KB address list. */
	g_string_assign(in, "Subject: =?UTF-8?B?");
	for (size_t i = 0; i < 100 * 1024 / 4; i++)
		g_string_append(in, "w7zD");
	g_string_append(in, "?=\r\nTo: ");
	for (size_t i = 0; i < 100 * 1024 / 18; i++)
		g_string_append(in, "a@example.org, ");
	g_string_append(in, "\r\n\r\n");
	mail_headers_parse(in->str, in->len, &h);
	assert_sane(&h);
	g_assert_nonnull(h.subject);
	g_assert_nonnull(h.to);
	g_assert_true(g_str_has_prefix(h.to, "a@example.org, a@example.org"));
	mail_headers_clear(&h);
	g_string_free(in, TRUE);
}

static void test_random(void)
{
	static const char *const pieces[] = {
		"Subject:", "From:", "To:", "Date:", "Message-ID:", "\r\n", "\n", " ", "\t",
		"=?", "?=", "?B?", "?Q?", "UTF-8", "ISO-2022-JP", "x-unknown", "<", ">",
		"\"", "@", ",", ";", "(", ")", "\\", ":", "=C3", "=FF", "\x1b$B", "\xff",
		"\xc3", "\0",
	};
	GRand *rand = g_rand_new_with_seed(20250401);
	GString *in = g_string_new(NULL);

	for (int iter = 0; iter < 10000; iter++) {
		struct mail_headers h = { 0 };
		int n = g_rand_int_range(rand, 0, 64);

		g_string_truncate(in, 0);
		for (int i = 0; i < n; i++) {
			if (g_rand_boolean(rand)) {
				g_string_append_c(in, (char)g_rand_int_range(rand, 0, 256));
			} else {
				const char *p = pieces[g_rand_int_range(rand, 0, G_N_ELEMENTS(pieces))];

				g_string_append_len(in, p, *p ? (gssize)strlen(p) : 1);
			}
		}
		mail_headers_parse(in->str, in->len, &h);
		assert_sane(&h);
		mail_headers_clear(&h);
	}
	g_string_free(in, TRUE);
	g_rand_free(rand);
}

static gpointer parse_many(gpointer data)
{
	const char *in = data;

	for (int i = 0; i < 500; i++) {
		struct mail_headers h = { 0 };

		mail_headers_parse(in, strlen(in), &h);
		g_assert_cmpstr(h.subject, ==, "\xe3\x81\xab\xe3\x81\xbb\xe3\x82\x93");
		mail_headers_clear(&h);
	}
	return NULL;
}

/* First use from several threads at once: init runs once, parsing is shared. */
static void test_threads(void)
{
	static char in[] = "Subject: =?ISO-2022-JP?B?GyRCJEskWyRzGyhC?=\r\n"
				 "From: =?UTF-8?Q?J=C3=B6rg?= <j@example.org>\r\n\r\n";
	GThread *t[4];

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		t[i] = g_thread_new("parse", parse_many, (gpointer)in);
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		g_thread_join(t[i]);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* Before any other test: the first parse initialises GMime. */
	g_test_add_func("/headers/threads", test_threads);
	g_test_add_func("/headers/vectors", test_vectors);
	g_test_add_func("/headers/lengths", test_lengths);
	g_test_add_func("/headers/cap", test_cap);
	g_test_add_func("/headers/random", test_random);
	return g_test_run();
}
