/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_decode: transfer decodings, charsets, HTML to text, header blocks.
 * Expected values marked "python" were cross-checked with Python's quopri,
 * base64, binascii, codecs and email.header.
 */
#include "model/mime_decode.h"

#include <glib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd"

struct vec {
	const char *a;  /* encoding or charset, NULL allowed */
	const char *in;
	gssize in_len;  /* -1: strlen */
	const char *want;
	gssize want_len;
};

static void check(GByteArray *got, const char *want, gssize want_len, const char *what)
{
	gsize wl = want_len < 0 ? strlen(want) : (gsize)want_len;
	g_autofree char *g = g_strndup((const char *)got->data, got->len);

	if (got->len != wl || (wl > 0 && memcmp(got->data, want, wl) != 0))
		g_test_message("%s: got \"%s\" (%u bytes), want \"%s\"", what, g, got->len, want);
	g_assert_cmpmem(got->data, got->len, want, wl);
	g_byte_array_unref(got);
}

static gsize in_len(const struct vec *v)
{
	return v->in_len < 0 ? strlen(v->in) : (gsize)v->in_len;
}

static const struct vec transfer_vectors[] = {
	/* base64 */
	{ "base64", "SGVsbG8s\r\nIHdvcmxkIQ==\r\n", -1, "Hello, world!", -1 }, /* python */
	{ "BASE64", "SGVs bG8s\tIHdv*cmxk!IQ==", -1, "Hello, world!", -1 },  /* garbage skipped */
	{ "base64", "YWI", -1, "ab", -1 },  /* missing padding; python email: b'ab' */
	{ "base64", "YWJjZA", -1, "abcd", -1 },
	{ "base64", "YQ=", -1, "a", -1 },
	{ "base64", "YWJjZA\r\n", -1, "abcd", -1 },
	{ "base64", "Y", -1, "", -1 },
	{ "base64", "!!!", -1, "", -1 },
	{ "base64", "AAEC", -1, "\0\1\2", 3 },
	/* quoted-printable; python quopri agrees */
	{ "quoted-printable", "caf=c3=A9 soft=\r\nbreak =3D eq =ZZ", -1,
	  "caf\xc3\xa9 softbreak = eq =ZZ", -1 },
	{ "Quoted-Printable", "a=\nb", -1, "ab", -1 },
	{ "quoted-printable", "line\r\nnext", -1, "line\r\nnext", -1 },
	{ "quoted-printable", "end=", -1, "end", -1 },
	{ "quoted-printable", "x=4", -1, "x", -1 },
	/* uuencode; python binascii.b2a_uu */
	{ "x-uuencode", "begin 644 cat.txt\n#0V%T\n`\nend\n", -1, "Cat", -1 },
	{ "uuencode",
	  "junk before\r\nbegin 600 f\r\n>:&5L;&\\@=V]R;&0L('1H:7,@:7,@=75E;F-O9&5D\r\n`\r\nend\r\n", -1,
	  "hello world, this is uuencoded", -1 },
	{ "x-uuencode", "#0V%T\n`\n", -1, "Cat", -1 }, /* no begin line */
	{ "x-uuencode", "begin 644 x\n", -1, "", -1 },
	/* copied */
	{ "7bit", "a=41\r\n", -1, "a=41\r\n", -1 },
	{ "8bit", "\xff\x00z", 3, "\xff\x00z", 3 },
	{ "binary", "YWI=", -1, "YWI=", -1 },
	{ "x-unknown", "YWI=", -1, "YWI=", -1 },
	{ NULL, "YWI=", -1, "YWI=", -1 },
	{ "base64", "", 0, "", 0 },
};

static void test_transfer(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(transfer_vectors); i++) {
		const struct vec *v = &transfer_vectors[i];

		check(mime_decode_transfer(v->a, (const guint8 *)v->in, in_len(v)), v->want,
		      v->want_len, v->in);
	}
}

/*
 * Large inputs: decoded whole and right (speed is scripts/bench's, never a
 * timed assertion). Under valgrind (the setup sets MAILFS_TEST_SMALL) they
 * are a twentieth of the size: the same chunk boundaries, in seconds.
 */
static gsize big(gsize n)
{
	return g_getenv("MAILFS_TEST_SMALL") ? n / 20 : n;
}

/* Decoding in chunks: a large base64 body crosses the chunk boundaries. */
static void test_transfer_large(void)
{
	gsize n = big(1000 * 1000) + 7;
	guint8 *raw = g_malloc(n);
	g_autofree char *b64 = NULL;
	g_autofree char *folded = NULL;
	GString *f = g_string_new(NULL);
	GByteArray *got;

	for (gsize i = 0; i < n; i++)
		raw[i] = (guint8)(i * 7 + i / 251);
	b64 = g_base64_encode(raw, n);
	for (gsize i = 0, b64_len = strlen(b64); i < b64_len; i += 76) {
		g_string_append_len(f, b64 + i, (gssize)MIN((gsize)76, b64_len - i));
		g_string_append(f, "\r\n");
	}
	folded = g_string_free(f, FALSE);
	got = mime_decode_transfer("base64", (const guint8 *)folded, strlen(folded));
	g_assert_cmpmem(got->data, got->len, raw, n);
	g_byte_array_unref(got);
	g_free(raw);
}

static const struct vec text_vectors[] = {
	{ "iso-8859-1", "d\xe9j\xe0 \x80", -1, "d\xc3\xa9j\xc3\xa0 \xe2\x82\xac", -1 },
	{ "latin1", "caf\xe9", -1, "caf\xc3\xa9", -1 },
	{ "windows-1252", "\x93q\x94 \x80 \x81", -1,
	  "\xe2\x80\x9cq\xe2\x80\x9d \xe2\x82\xac " FFFD, -1 },
	{ "KOI8-R", "\xf0\xd2\xc9\xd7\xc5\xd4", -1, "Привет", -1 }, /* python */
	{ "shift_jis", "\x93\xfa\x96{\x8c\xea", -1, "日本語", -1 }, /* python */
	{ "shift_jis", "a\x93", -1, "a" FFFD, -1 },                 /* cut short */
	{ "iso-2022-jp", "\x1b$BF|K\\\x1b(B", -1, "日本", -1 },
	{ "utf-8", "\xd0\x9f\xd1\x80\xd0\xb8 \xff\xc3(", -1, "При " FFFD FFFD "(", -1 },
	{ "UTF8", "ok \xc3\xa9", -1, "ok \xc3\xa9", -1 },
	{ "utf-8", "\xed\xa0\x80", -1, FFFD FFFD FFFD, -1 }, /* a surrogate */
	{ "x-unknown", "caf\xc3\xa9 \xe9t\xe9", -1, "caf\xc3\xa9 \xc3\xa9t\xc3\xa9", -1 },
	{ NULL, "\x93hi\x94 \xe2\x82\xac", -1, "\xe2\x80\x9chi\xe2\x80\x9d \xe2\x82\xac", -1 },
	{ "us-ascii", "na\xefve", -1, "na\xc3\xafve", -1 },
	{ "utf-16le", "h\0i\0\r\0\n\0", 8, "hi\n", -1 },
	{ "utf-8", "a\r\nb\rc\n\r\nd\r", -1, "a\nb\nc\n\nd\n", -1 },
	{ "iso-8859-1", "a\0b\r\0\nc", 7, "ab\n\nc", -1 },
	{ NULL, "", 0, "", 0 },
};

static void test_text(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(text_vectors); i++) {
		const struct vec *v = &text_vectors[i];

		check(mime_text_to_utf8(v->a, (const guint8 *)v->in, in_len(v)), v->want,
		      v->want_len, v->in);
	}
}

/* 20 MB of text with CRLF and a stray byte here and there. */
static void test_text_large(void)
{
	gsize n = big(20 * 1000 * 1000) / 80 * 80;
	guint8 *raw = g_malloc(n);
	GByteArray *got;

	for (gsize i = 0; i < n; i++)
		raw[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : i % 80 == 40 ? 0xe9 : 'a';
	got = mime_text_to_utf8("utf-8", raw, n);
	/* A CR less and two bytes more (U+FFFD) a line. */
	g_assert_cmpuint(got->len, ==, n + n / 80);
	g_byte_array_unref(got);
	got = mime_text_to_utf8("koi8-r", raw, n);
	g_assert_cmpuint(got->len, ==, n);
	g_byte_array_unref(got);
	got = mime_text_to_utf8(NULL, raw, n);
	g_assert_cmpuint(got->len, ==, n);
	g_byte_array_unref(got);
	g_free(raw);
}

static const struct vec html_vectors[] = {
	{ NULL, "<p>Hello</p><p>World</p>", -1, "Hello\nWorld\n", -1 },
	{ NULL, "a<br>b<br/>c<BR />d</br>e", -1, "a\nb\nc\nd\ne\n", -1 },
	{ NULL, "<div>x</div><TR>y</tr><h1>T</h1><h6>t</h6>", -1, "x\ny\nT\nt\n", -1 },
	{ NULL, "<table><tr><td>a</td><td>b</td></tr></table>end", -1, "a b\nend\n", -1 },
	{ NULL, "<blockquote>q</blockquote>r", -1, "q\nr\n", -1 },
	{ NULL, "<ul><li>one</li><li> two </li></ul>", -1, "* one\n* two\n", -1 },
	{ NULL, "x<li>a<li>b", -1, "x\n* a\n* b\n", -1 },
	{ NULL, "<head><title>T</title><style>p{}</style></head><body>B</body>", -1, "B\n", -1 },
	{ NULL, "<html><head><title>T</title><body>B", -1, "B\n", -1 },
	{ NULL, "a<script type=\"x\">if (a<b) x=\"</p>\";</script>b", -1, "ab\n", -1 },
	{ NULL, "a<STYLE>.x{}</Style>b<script>never closed", -1, "ab\n", -1 },
	{ NULL, "a<!-- hidden <b>x</b> -->b<!-- open", -1, "ab\n", -1 },
	{ NULL, "<b>bold</b> <i>it</i><span class='x'>s</span>", -1, "bold its\n", -1 },
	{ NULL, "a \t  b\t\tc", -1, "a b c\n", -1 },
	{ NULL, "  lead\n  next  \n", -1, "lead next\n", -1 },
	{ NULL, "<pre>  a   b\n\tc</pre>d  e", -1, "  a   b\n\tc\nd e\n", -1 },
	{ NULL, "a\n\n\n\n\nb<p></p><p></p><p></p>c", -1, "a b\nc\n", -1 },
	{ NULL, "<div><div>x</div></div>y<br><br><br><br>z", -1, "x\ny\n\nz\n", -1 },
	{ NULL, "\n\n<p></p>  \n<br>x<br><br><br>\n\n", -1, "x\n", -1 },
	{ NULL, "&amp; &lt; &gt; &quot; &apos; a&nbsp;b", -1, "& < > \" ' a b\n", -1 },
	{ NULL, "&#65;&#x42;&#X43;&#233;&#x1F600;", -1, "ABC\xc3\xa9\xf0\x9f\x98\x80\n", -1 },
	{ NULL, "&#0;&#xD800;&#x110000;&#27;", -1, FFFD FFFD FFFD FFFD "\n", -1 },
	{ NULL, "&copy; &AMP; &amp &#; &#x; &#12a; &#123456789; & x", -1,
	  "&copy; &AMP; &amp &#; &#x; &#12a; &#123456789; & x\n", -1 },
	{ NULL, "&lt;p&gt; stays text", -1, "<p> stays text\n", -1 },
	{ NULL, "a < b and 3<4 <", -1, "a < b and 3<4 <\n", -1 },
	{ NULL, "a <b title=\"x>y\">bold</b> c", -1, "a bold c\n", -1 },
	{ NULL, "a <img alt=\"open>x</p>y", -1, "a x\ny\n", -1 },
	{ NULL, "text<unclosed tag", -1, "text\n", -1 },
	{ NULL, "<!DOCTYPE html><?xml x?>t", -1, "t\n", -1 },
	{ NULL, "<averyveryverylongtagname>t</averyveryverylongtagname>", -1, "t\n", -1 },
	{ NULL, "a\r\nb\rc", -1, "a b c\n", -1 },
	{ NULL, "<p>&nbsp;</p><p>&nbsp;</p><p>x</p>", -1, "x\n", -1 },
	{ NULL, "", 0, "", 0 },
	{ NULL, "<p> </p>", -1, "", 0 },
};

static void test_html(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(html_vectors); i++) {
		const struct vec *v = &html_vectors[i];

		check(mime_html_to_text((const guint8 *)v->in, in_len(v)), v->want, v->want_len, v->in);
	}
}

/* Linear in the worst inputs: many open tags, quotes, comments, huge attributes. */
static void test_html_large(void)
{
	const char *pieces[] = { "<a x=\"", "<a x='>", "<!--", "<", "&#", "<script>", "<p", "&amp" };

	for (gsize k = 0; k < G_N_ELEMENTS(pieces); k++) {
		GString *s = g_string_new(NULL);
		GByteArray *got;

		while (s->len < big(4 * 1000 * 1000))
			g_string_append(s, pieces[k]);
		got = mime_html_to_text((const guint8 *)s->str, s->len);
		g_assert_cmpuint(got->len, <=, s->len + 1);
		g_byte_array_unref(got);
		g_string_free(s, TRUE);
	}
}

static const struct vec header_vectors[] = {
	{ NULL, "Subject: hi\r\nFrom: A <a@example.org>\r\n\r\nBody: no\r\n", -1,
	  "Subject: hi\nFrom: A <a@example.org>\n", -1 },
	{ NULL, "Subject: one\r\n two\r\n\tthree\nX-Y :  v  \n", -1,
	  "Subject: one two\tthree\nX-Y: v\n", -1 },
	/* The words as python's email.header decodes them; the blank between
	   two encoded words goes (RFC 2047 section 6.2). */
	{ NULL, "Subject: =?koi8-r?B?8NLJ18XU?= =?ISO-8859-1?Q?Gr=FC=DFe?= !\n", -1,
	  "Subject: ПриветGrüße !\n", -1 },
	{ NULL, "Subject: =?UTF-8?Q?a?=\r\n =?UTF-8?B?w6k=?=\r\nTo: =?shift_jis?B?k/qWe4zq?= <j@x>\r\n", -1,
	  "Subject: a\xc3\xa9\nTo: 日本語 <j@x>\n", -1 },
	{ NULL, "Subject: caf\xc3\xa9\nFrom: J\xf6rg\n", -1,
	  "Subject: caf\xc3\xa9\nFrom: J\xc3\xb6rg\n", -1 },
	{ NULL, "Subject: a\x01\x1b[31mb\x7f\tc\r\n", -1, "Subject: a[31mb\tc\n", -1 },
	{ NULL, "Subject: =?UTF-8?Q?x=C2=9By?=\n", -1, "Subject: xy\n", -1 }, /* C1 too */
	{ NULL, "Subject: a\0b\n", 13, "Subject: ab\n", -1 },
	{ NULL, "garbage line\n cont\nX: 1\nFrom mbox line\nEmpty:\n", -1, "X: 1\nEmpty:\n", -1 },
	{ NULL, " leading fold\nA: b", -1, "A: b\n", -1 },
	{ NULL, "\r\nSubject: after", -1, "", 0 },
	{ NULL, "", 0, "", 0 },
};

static void test_headers(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(header_vectors); i++) {
		const struct vec *v = &header_vectors[i];

		check(mime_headers_text((const guint8 *)v->in, in_len(v)), v->want, v->want_len, v->in);
	}
}

/* A huge folded field and many fields. */
static void test_headers_large(void)
{
	GString *s = g_string_new("Received: x");
	GByteArray *got;

	while (s->len < big(2 * 1000 * 1000))
		g_string_append(s, "\r\n =?UTF-8?Q?=C3=A9?= word");
	for (int i = 0; i < (int)big(20000); i++)
		g_string_append_printf(s, "\r\nX-%d: =?ISO-8859-1?Q?=E9?=", i);
	got = mime_headers_text((const guint8 *)s->str, s->len);
	g_assert_true(g_str_has_prefix((const char *)got->data, "Received: x \xc3\xa9"));
	g_assert_true(g_utf8_validate_len((const char *)got->data, got->len, NULL));
	g_byte_array_unref(got);
	g_string_free(s, TRUE);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mime_decode/transfer", test_transfer);
	g_test_add_func("/mime_decode/transfer_large", test_transfer_large);
	g_test_add_func("/mime_decode/text", test_text);
	g_test_add_func("/mime_decode/text_large", test_text_large);
	g_test_add_func("/mime_decode/html", test_html);
	g_test_add_func("/mime_decode/html_large", test_html_large);
	g_test_add_func("/mime_decode/headers", test_headers);
	g_test_add_func("/mime_decode/headers_large", test_headers_large);
	return g_test_run();
}
