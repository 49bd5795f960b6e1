/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/append.h"

#include <glib.h>
#include <string.h>

/* A string literal and its length, NUL bytes included. */
#define S(x) x, sizeof(x) - 1

static const struct {
	const char *name;
	const char *in;
	gsize in_len;
	const char *want; /* NULL: refused with G_FILE_ERROR_INVAL */
} prepare_vectors[] = {
	{ "LF to CRLF", S("Subject: a\nFrom: b\n\nbody\n"),
	  "Subject: a\r\nFrom: b\r\n\r\nbody\r\n" },
	{ "CRLF kept", S("Subject: a\r\n\r\nbody\r\n"), "Subject: a\r\n\r\nbody\r\n" },
	{ "mixed endings", S("Subject: a\r\nTo: b\n\r\nx\ny\r\n"),
	  "Subject: a\r\nTo: b\r\n\r\nx\r\ny\r\n" },
	{ "lone CR kept", S("Subject: a\rb\n\nx\r"), "Subject: a\rb\r\n\r\nx\r" },
	{ "CR CR LF", S("Subject: a\r\r\n"), "Subject: a\r\r\n" },
	{ "LF CR", S("Subject: a\n\rx"), "Subject: a\r\n\rx" },
	{ "no final line end", S("Subject: a"), "Subject: a" },
	{ "header only, empty value", S("X:"), "X:" },
	{ "blank lines at the end", S("Subject: a\n\n\n"), "Subject: a\r\n\r\n\r\n" },
	{ "8-bit kept", S("Subject: Gr\xc3\xbc\xfc\n\n\xff\n"), "Subject: Gr\xc3\xbc\xfc\r\n\r\n\xff\r\n" },
	/* sent as written: a leading mbox From line, a first line that is no header */
	{ "mbox From kept", S("From alice@example.org Tue Apr  1 10:00:00 2025\nSubject: a\n\nx\n"),
	  "From alice@example.org Tue Apr  1 10:00:00 2025\r\nSubject: a\r\n\r\nx\r\n" },
	{ "mbox From CRLF kept", S("From a b\r\nSubject: a\r\n"), "From a b\r\nSubject: a\r\n" },
	{ "From line only", S("From a b c"), "From a b c" },
	{ "no header", S("Hello world\n"), "Hello world\r\n" },
	{ "blank first line", S("\nSubject: a\n"), "\r\nSubject: a\r\n" },
	{ "continuation first", S(" Subject: a\n"), " Subject: a\r\n" },
	{ "UTF-8 BOM kept", S("\xef\xbb\xbfSubject: a\n"), "\xef\xbb\xbfSubject: a\r\n" },
	{ "one byte", S("x"), "x" },
	{ "only an LF", S("\n"), "\r\n" },
	{ "CRLF first line", S("\r\nSubject: a\r\n"), "\r\nSubject: a\r\n" },
	{ "colon first", S(":a\n"), ":a\r\n" },
	{ "8-bit first line", S("Subj\xc3\xa9" "ct: a\n"), "Subj\xc3\xa9" "ct: a\r\n" },
	{ "odd but valid field name", S("X-!#$%&'*+-.^_`|~0: v\n"), "X-!#$%&'*+-.^_`|~0: v\r\n" },
	{ "From: is a header", S("From: a@example.org\n\n"), "From: a@example.org\r\n\r\n" },
	/* refused */
	{ "empty", S(""), NULL },
	/* NUL refused anywhere */
	{ "NUL in body", S("Subject: a\n\nx\0y\n"), NULL },
	{ "NUL first", S("\0Subject: a\n"), NULL },
	{ "NUL in From line", S("From a\0\nSubject: a\n"), NULL },
	{ "NUL only", S("\0"), NULL },
};

static void test_prepare_vectors(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(prepare_vectors); i++) {
		const char *want = prepare_vectors[i].want;
		GByteArray *out = (GByteArray *)(void *)0x1; /* must be overwritten */
		GError *err = NULL;
		gboolean ok;

		g_test_message("vector %zu: %s", i, prepare_vectors[i].name);
		ok = append_prepare((const guint8 *)prepare_vectors[i].in, prepare_vectors[i].in_len,
				    &out, &err);
		if (!want) {
			g_assert_false(ok);
			g_assert_null(out);
			g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
			g_clear_error(&err);
			continue;
		}
		g_assert_no_error(err);
		g_assert_true(ok);
		g_assert_nonnull(out);
		g_assert_cmpmem(out->data, out->len, want, strlen(want));
		g_byte_array_unref(out);
	}
}

static void test_prepare_messages(void)
{
	GByteArray *out = NULL;
	GError *err = NULL;

	g_assert_false(append_prepare(NULL, 0, &out, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
	g_assert_nonnull(strstr(err->message, "empty"));
	g_clear_error(&err);

	g_assert_false(append_prepare((const guint8 *)"A: b\n\0", 6, &out, &err));
	g_assert_nonnull(strstr(err->message, "NUL"));
	g_assert_nonnull(strstr(err->message, "offset 5"));
	g_clear_error(&err);

	/* err may be NULL */
	g_assert_false(append_prepare((const guint8 *)"\0", 1, &out, NULL));
	g_assert_false(append_prepare((const guint8 *)"x\0", 2, &out, NULL));
	g_assert_null(out);
}

/* A file already in CRLF comes out byte for byte the same, length too. */
static void test_prepare_crlf_identity(void)
{
	GString *in = g_string_new("Return-Path: <a@example.org>\r\nReceived: from x\r\n\tby y\r\n"
				   "Subject: s\r\n\r\n");
	GByteArray *out = NULL;
	GError *err = NULL;

	for (int i = 0; i < 1000; i++)
		g_string_append_printf(in, "line %d with a lone \r CR\r\n", i);
	g_assert_true(append_prepare((const guint8 *)in->str, in->len, &out, &err));
	g_assert_no_error(err);
	g_assert_cmpmem(out->data, out->len, in->str, in->len);
	g_byte_array_unref(out);
	g_string_free(in, TRUE);
}

/* 10 MB of bare-LF lines: linear, one allocation; no timing assert. */
static void test_prepare_large(void)
{
	const gsize target = 10 * 1024 * 1024;
	const char line[] = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
	GString *in = g_string_sized_new(target + 256);
	GByteArray *out = NULL;
	GError *err = NULL;
	gsize lines = 0;

	g_string_append(in, "From a Tue Apr  1 10:00:00 2025\nSubject: big\nMessage-ID: <big@x>\n\n");
	while (in->len < target) {
		g_string_append_len(in, line, sizeof(line) - 1);
		lines++;
	}
	g_assert_true(append_prepare((const guint8 *)in->str, in->len, &out, &err));
	g_assert_no_error(err);
	/* every LF (From, 2 header lines, blank, body lines) doubled to CRLF */
	g_assert_cmpuint(out->len, ==, in->len + 4 + lines);
	g_assert_true(memcmp(out->data, "From a Tue Apr  1 10:00:00 2025\r\nSubject: big\r\n", 47) == 0);
	g_assert_true(memcmp(out->data + out->len - 2, "\r\n", 2) == 0);
	g_byte_array_unref(out);
	g_string_free(in, TRUE);
}

static const struct {
	const char *in;
	gsize in_len;
	const char *want; /* NULL: refused */
} flag_vectors[] = {
	{ S(""), "" },
	{ S("   "), "" },
	{ S("   \t\r\n "), NULL },
	{ S("\\Seen"), "\\Seen" },
	{ S("\\Seen \\Flagged $Work"), "\\Seen \\Flagged $Work" },
	{ S("\\seen \\FLAGGED \\answered \\DeLeTeD \\draft"),
	  "\\Seen \\Flagged \\Answered \\Deleted \\Draft" },
	{ S("  \\Seen  $Work \\Draft  "), "\\Seen $Work \\Draft" },
	/* controls are refused, line breaks and TAB included: never separators */
	{ S("\\Seen\t\t$Work\n\\Draft\r\n"), NULL },
	{ S("\\Seen\r\n$Junk"), NULL },
	{ S("\\Seen\n"), NULL },
	{ S("\\Seen\t$Work"), NULL },
	{ S("\r"), NULL },
	{ S("\\Seen\v\\Draft"), NULL },
	{ S("\\Seen\f"), NULL },
	{ S("$Work \\Seen"), "$Work \\Seen" },
	/* duplicates: kept once, first place, first spelling */
	{ S("\\Seen \\seen \\SEEN"), "\\Seen" },
	{ S("$Work \\Seen $work $WORK"), "$Work \\Seen" },
	{ S("a b a c b"), "a b c" },
	/* keywords */
	{ S("$Forwarded $MDNSent $Junk NonJunk"), "$Forwarded $MDNSent $Junk NonJunk" },
	{ S("a.b-c_d+e!#&'/:;<=>?@[^`|}~"), "a.b-c_d+e!#&'/:;<=>?@[^`|}~" },
	{ S("Work\xc3\xa9"), NULL },
	{ S("a(b"), NULL },
	{ S("a)b"), NULL },
	{ S("a{3}"), NULL },
	{ S("50%"), NULL },
	{ S("a*"), NULL },
	{ S("\"quoted\""), NULL },
	{ S("a\\b"), NULL },
	{ S("a]"), NULL },
	{ S("a\x01" "b"), NULL },
	{ S("a\x7f"), NULL },
	{ S("\\Seen bad(one)"), NULL },
	/* system flags */
	{ S("\\Recent"), NULL },
	{ S("\\recent"), NULL },
	{ S("\\Seen \\Recent"), NULL },
	{ S("\\*"), NULL },
	{ S("\\"), NULL },
	{ S("\\Important"), NULL },
	{ S("\\Seenx"), NULL },
	{ S("\\See"), NULL },
	{ S("\\\\Seen"), NULL },
	/* NUL: trailing terminators ignored, elsewhere refused */
	{ S("\\Seen\0"), "\\Seen" },
	{ S("\\Seen $Work\0\0"), "\\Seen $Work" },
	{ S("\0"), "" },
	{ S("\\Se\0en"), NULL },
	{ S("\\Seen\0 $Work"), NULL },
};

static void test_flags(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(flag_vectors); i++) {
		char *canonical = (char *)(void *)0x1; /* must be overwritten */
		GError *err = NULL;
		gboolean ok;
		g_autofree char *shown = g_strescape(flag_vectors[i].in, NULL);

		g_test_message("vector %zu: \"%s\"", i, shown);
		ok = append_parse_flags(flag_vectors[i].in, flag_vectors[i].in_len, &canonical,
					&err);
		if (!flag_vectors[i].want) {
			g_assert_false(ok);
			g_assert_null(canonical);
			g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
			g_clear_error(&err);
			continue;
		}
		g_assert_no_error(err);
		g_assert_true(ok);
		g_assert_cmpstr(canonical, ==, flag_vectors[i].want);
		g_free(canonical);
	}
}

static void test_flags_messages(void)
{
	char *canonical = NULL;
	GError *err = NULL;

	g_assert_true(append_parse_flags(NULL, 0, &canonical, NULL));
	g_assert_cmpstr(canonical, ==, "");
	g_free(canonical);

	g_assert_false(append_parse_flags(S("\\Seen \\Recent"), &canonical, &err));
	g_assert_nonnull(strstr(err->message, "\\\\Recent")); /* the flag, escaped */
	g_assert_nonnull(strstr(err->message, "server"));
	g_clear_error(&err);

	/* a control character in the message is escaped, not printed raw */
	g_assert_false(append_parse_flags(S("a\x1b[31m"), &canonical, &err));
	g_assert_null(strchr(err->message, '\x1b'));
	g_clear_error(&err);

	/* the value need not be NUL-terminated: only len bytes are read */
	g_assert_true(append_parse_flags("\\Seen \\Draft", 5, &canonical, NULL));
	g_assert_cmpstr(canonical, ==, "\\Seen");
	g_free(canonical);
}

/* The canonical form is a fixed point. */
static void test_flags_idempotent(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(flag_vectors); i++) {
		char *again = NULL;

		if (!flag_vectors[i].want)
			continue;
		g_assert_true(append_parse_flags(flag_vectors[i].want, strlen(flag_vectors[i].want),
						 &again, NULL));
		g_assert_cmpstr(again, ==, flag_vectors[i].want);
		g_free(again);
	}
}

static const struct {
	gint64 t;
	const char *want; /* NULL: out of range */
} date_vectors[] = {
	{ 0, " 1-Jan-1970 00:00:00 +0000" },
	{ -1, "31-Dec-1969 23:59:59 +0000" },
	{ 1795701909, "26-Nov-2026 14:05:09 +0000" },
	{ 1793973909, " 6-Nov-2026 14:05:09 +0000" },
	{ 1709251199, "29-Feb-2024 23:59:59 +0000" },
	{ 951825600, "29-Feb-2000 12:00:00 +0000" },
	{ 4107542399, "28-Feb-2100 23:59:59 +0000" },
	{ 4107542400, " 1-Mar-2100 00:00:00 +0000" },
	{ 253402300799, "31-Dec-9999 23:59:59 +0000" },
	{ -62135596800, " 1-Jan-0001 00:00:00 +0000" },
	{ 253402300800, NULL },
	{ -62135596801, NULL },
	{ G_MAXINT64, NULL },
	{ G_MININT64, NULL },
};

static void test_internaldate(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(date_vectors); i++) {
		g_autofree char *s = append_internaldate(date_vectors[i].t);

		g_test_message("vector %zu: %" G_GINT64_FORMAT, i, date_vectors[i].t);
		g_assert_cmpstr(s, ==, date_vectors[i].want);
	}
}

static void test_scratch_names(void)
{
	static const struct {
		const char *name;
		gboolean scratch;
	} cases[] = {
		{ ".a.eml.Xy12", TRUE },
		{ ".4711-x.eml.AbCdEf", TRUE },
		{ ".hidden", TRUE },
		{ ".#foo", TRUE },
		{ ".x.eml.swp", TRUE },
		{ ".", TRUE },
		{ "..", TRUE },
		{ "...", TRUE },
		{ "a.eml", FALSE },
		{ "4711-Meeting.eml", FALSE },
		{ "a.", FALSE },
		{ "a.eml.swp", FALSE },
		{ " .x", FALSE },
		{ "#foo#", FALSE },
		{ "foo~", TRUE },
		{ "4711-x.eml~", TRUE },
		{ "~", TRUE },
		{ "~foo", FALSE },
		{ "", FALSE },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_test_message("case %zu: \"%s\"", i, cases[i].name);
		g_assert_cmpint(append_is_scratch_name(cases[i].name), ==, cases[i].scratch);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/append/prepare-vectors", test_prepare_vectors);
	g_test_add_func("/append/prepare-messages", test_prepare_messages);
	g_test_add_func("/append/prepare-crlf-identity", test_prepare_crlf_identity);
	g_test_add_func("/append/prepare-large", test_prepare_large);
	g_test_add_func("/append/flags", test_flags);
	g_test_add_func("/append/flags-messages", test_flags_messages);
	g_test_add_func("/append/flags-idempotent", test_flags_idempotent);
	g_test_add_func("/append/internaldate", test_internaldate);
	g_test_add_func("/append/scratch-names", test_scratch_names);
	return g_test_run();
}
