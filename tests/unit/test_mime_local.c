/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_local against what dovecot answers: the structures and the
 * BODY[section] bytes below were checked byte for byte against a dovecot
 * 2.3 server (APPEND, then FETCH BODYSTRUCTURE and BODY.PEEK[section]).
 */
#include "model/mime_local.h"

#include <string.h>

/* The message with each LF made CRLF, as a server stores it. */
static GByteArray *crlf(const char *lf)
{
	GByteArray *b = g_byte_array_new();

	for (const char *c = lf; *c; c++) {
		if (*c == '\n')
			g_byte_array_append(b, (const guint8 *)"\r", 1);
		g_byte_array_append(b, (const guint8 *)c, 1);
	}
	return b;
}

/* The structure as "section type/subtype size," in depth-first order. */
static void describe(const struct mime_part *p, GString *out)
{
	g_string_append_printf(out, "[%s]%s/%s:%" G_GUINT64_FORMAT " ", p->section, p->type,
			       p->subtype, p->size);
	for (guint i = 0; i < p->children->len; i++)
		describe(p->children->pdata[i], out);
}

static void check_structure(const GByteArray *m, const char *want)
{
	struct mime_structure *s = mime_local_structure(m->data, m->len);
	GString *got = g_string_new(NULL);

	describe(s->root, got);
	g_assert_cmpstr(g_strchomp(got->str), ==, want);
	g_assert_false(s->cut);
	g_string_free(got, TRUE);
	mime_structure_free(s);
}

/* BODY[section] is want (LF in want made CRLF); want NULL: no such section. */
static void check_section(const GByteArray *m, const char *section, const char *want)
{
	GByteArray *got = mime_local_section(m->data, m->len, section);

	if (!want) {
		g_assert_null(got);
		return;
	}
	GByteArray *w = crlf(want);

	g_assert_nonnull(got);
	g_assert_cmpmem(got->data, got->len, w->data, w->len);
	g_byte_array_unref(w);
	g_byte_array_unref(got);
}

static const char nested[] = "From: a@x\n"
			     "Subject: nested\n"
			     "MIME-Version: 1.0\n"
			     "Content-Type: multipart/mixed; boundary=\"outer\"\n"
			     "\n"
			     "This is the preamble.\n"
			     "--outer\n"
			     "Content-Type: multipart/alternative; boundary=inner\n"
			     "\n"
			     "--inner\n"
			     "Content-Type: text/plain; charset=utf-8\n"
			     "\n"
			     "plain text\n"
			     "--inner\n"
			     "Content-Type: text/html\n"
			     "\n"
			     "<p>html</p>\n"
			     "--inner--\n"
			     "inner epilogue\n"
			     "--outer\n"
			     "Content-Type: application/pdf; name=\"a.pdf\"\n"
			     "Content-Disposition: attachment; filename=\"a.pdf\"\n"
			     "Content-Transfer-Encoding: base64\n"
			     "\n"
			     "JVBERi0xLjQK\n"
			     "JVBERi0xLjQK\n"
			     "--outer--\n"
			     "This is the epilogue.\n";

static void test_nested(void)
{
	GByteArray *m = crlf(nested);
	struct mime_structure *s;
	const struct mime_part *pdf;

	check_structure(m, "[]multipart/mixed:431 [1]multipart/alternative:138 "
			   "[1.1]text/plain:10 [1.2]text/html:11 [2]application/pdf:26");
	check_section(m, "1.1", "plain text");
	check_section(m, "1.2", "<p>html</p>");
	check_section(m, "2", "JVBERi0xLjQK\nJVBERi0xLjQK");
	check_section(m, "2.MIME", "Content-Type: application/pdf; name=\"a.pdf\"\n"
				   "Content-Disposition: attachment; filename=\"a.pdf\"\n"
				   "Content-Transfer-Encoding: base64\n\n");
	check_section(m, "1", "--inner\nContent-Type: text/plain; charset=utf-8\n\nplain text\n"
			      "--inner\nContent-Type: text/html\n\n<p>html</p>\n--inner--\n"
			      "inner epilogue");
	check_section(m, "HEADER", "From: a@x\nSubject: nested\nMIME-Version: 1.0\n"
				   "Content-Type: multipart/mixed; boundary=\"outer\"\n\n");
	check_section(m, "3", NULL);
	check_section(m, "1.3", NULL);
	check_section(m, "2.HEADER", NULL);
	check_section(m, "", nested); /* BODY[]: all of it */

	s = mime_local_structure(m->data, m->len);
	pdf = mime_structure_find(s, "2");
	g_assert_nonnull(pdf);
	g_assert_cmpstr(pdf->encoding, ==, "base64");
	g_assert_cmpstr(pdf->disposition, ==, "attachment");
	g_assert_cmpstr(mime_param_get(pdf->disp_params, "FILENAME"), ==, "a.pdf");
	g_assert_cmpstr(mime_param_get(pdf->params, "name"), ==, "a.pdf");
	g_assert_cmpstr(mime_param_get(mime_structure_find(s, "1.1")->params, "charset"), ==,
			"utf-8");
	g_assert_cmpstr(mime_structure_find(s, "1.1")->parent->section, ==, "1");
	/* The default charset written out, as dovecot's BODYSTRUCTURE does. */
	g_assert_cmpstr(mime_param_get(mime_structure_find(s, "1.2")->params, "charset"), ==,
			"us-ascii");
	g_assert_cmpuint(s->nparts, ==, 5);
	mime_structure_free(s);
	g_byte_array_unref(m);
}

static const char forwarded[] = "From: a@x\n"
				"Subject: fwd\n"
				"Content-Type: multipart/mixed; boundary=b1\n"
				"\n"
				"--b1\n"
				"Content-Type: text/plain\n"
				"\n"
				"see attached\n"
				"\n"
				"--b1\n"
				"Content-Type: message/rfc822\n"
				"Content-Disposition: attachment\n"
				"\n"
				"From: b@y\n"
				"Subject: inner\n"
				"Content-Type: multipart/mixed; boundary=b2\n"
				"\n"
				"--b2\n"
				"Content-Type: text/plain\n"
				"\n"
				"inner text\n"
				"--b2\n"
				"Content-Type: image/png\n"
				"Content-Transfer-Encoding: base64\n"
				"\n"
				"iVBORw0KGgo=\n"
				"--b2--\n"
				"\n"
				"--b1\n"
				"Content-Type: message/rfc822\n"
				"\n"
				"From: c@z\n"
				"Subject: single inner\n"
				"\n"
				"just text\n"
				"--b1--\n";

/* A message/rfc822 part S: its multipart body is numbered S too (as the
   top-level multipart is ""), its parts S.1, S.2; a single-part body S.1. */
static void test_message_rfc822(void)
{
	GByteArray *m = crlf(forwarded);
	struct mime_structure *s;

	check_structure(m, "[]multipart/mixed:425 [1]text/plain:14 [2]message/rfc822:209 "
			   "[2]multipart/mixed:136 [2.1]text/plain:10 [2.2]image/png:12 "
			   "[3]message/rfc822:45 [3.1]text/plain:9");
	check_section(m, "1", "see attached\n");
	check_section(m, "2.HEADER", "From: b@y\nSubject: inner\n"
				     "Content-Type: multipart/mixed; boundary=b2\n\n");
	check_section(m, "2.1", "inner text");
	check_section(m, "2.2", "iVBORw0KGgo=");
	check_section(m, "2.2.MIME", "Content-Type: image/png\n"
				     "Content-Transfer-Encoding: base64\n\n");
	check_section(m, "3", "From: c@z\nSubject: single inner\n\njust text");
	check_section(m, "3.HEADER", "From: c@z\nSubject: single inner\n\n");
	check_section(m, "3.TEXT", "just text");
	check_section(m, "3.1", "just text");
	check_section(m, "1.HEADER", NULL);

	s = mime_local_structure(m->data, m->len);
	/* The number 2 finds the message/rfc822 part, not its body. */
	g_assert_cmpstr(mime_structure_find(s, "2")->type, ==, "message");
	g_assert_cmpstr(mime_structure_find(s, "2.1")->parent->type, ==, "multipart");
	g_assert_true(mime_structure_find(s, "2.1")->parent->parent == mime_structure_find(s, "2"));
	mime_structure_free(s);
	g_byte_array_unref(m);
}

static void test_single_part(void)
{
	GByteArray *m = crlf("From: a@x\nSubject: hi\n\nHello\nworld\n");
	GByteArray *n = crlf("From: a@x\nSubject: hi\n");
	GByteArray *r = crlf("From: a@x\nContent-Type: message/rfc822\n\n"
			     "From: b@y\nSubject: in\n\nbody\n");
	GByteArray *g = crlf("Content-Type: garbage\nContent-Transfer-Encoding: BASE64\n\naGk=\n");

	check_structure(m, "[1]text/plain:14");
	check_section(m, "1", "Hello\nworld\n");
	check_section(m, "TEXT", "Hello\nworld\n");
	check_section(m, "HEADER", "From: a@x\nSubject: hi\n\n");
	check_section(m, "1.1", NULL);
	/* No empty line: all header, an empty body. */
	check_structure(n, "[1]text/plain:0");
	check_section(n, "1", "");
	check_section(n, "HEADER", "From: a@x\nSubject: hi\n");
	/* A message that is one message/rfc822. */
	check_structure(r, "[1]message/rfc822:32 [1.1]text/plain:6");
	check_section(r, "1.1", "body\n");
	check_section(r, "1.HEADER", "From: b@y\nSubject: in\n\n");
	/* A Content-Type that does not parse is text/plain; the encoding lower-cased. */
	check_structure(g, "[1]text/plain:6");
	{
		struct mime_structure *s = mime_local_structure(g->data, g->len);

		g_assert_cmpstr(s->root->encoding, ==, "base64");
		mime_structure_free(s);
	}
	g_byte_array_unref(m);
	g_byte_array_unref(n);
	g_byte_array_unref(r);
	g_byte_array_unref(g);
}

static void test_boundaries(void)
{
	GByteArray *noclose = crlf("Content-Type: multipart/mixed; boundary=zz\n\n"
				   "--zz\nContent-Type: text/plain\n\none\n--zz\n\ntwo no headers\n");
	GByteArray *empty = crlf("Content-Type: multipart/mixed; boundary=q\n\n"
				 "--q\n--q\n\n--q\nContent-Type: text/plain\n\nx\n--q--\n");
	GByteArray *trailing = crlf("Content-Type: multipart/mixed; boundary=\"b\"\n\n"
				    "--b  \nContent-Type: text/plain\n\na\n--bxyz\n"
				    "Content-Type: text/plain\n\nb\n--b--  \n");
	GByteArray *digest = crlf("Content-Type: multipart/digest; boundary=d\n\n"
				  "--d\n\nFrom: x@y\nSubject: d1\n\ndigest one\n--d\n"
				  "Content-Type: text/plain\n\nnot a message\n--d--\n");
	GByteArray *lf_only = g_byte_array_new();
	const char *lf = "Content-Type: multipart/mixed; boundary=l\n\n--l\n\nbare\n--l--\n";

	/* Without the closing boundary the last part runs to the end. */
	check_structure(noclose, "[]multipart/mixed:63 [1]text/plain:3 [2]text/plain:16");
	check_section(noclose, "2", "two no headers\n");
	check_structure(empty, "[]multipart/mixed:55 [1]text/plain:0 [2]text/plain:0 "
			       "[3]text/plain:1");
	check_section(empty, "1", "");
	check_section(empty, "3", "x");
	/* Boundaries match as a prefix of the line. */
	check_structure(trailing, "[]multipart/mixed:86 [1]text/plain:1 [2]text/plain:1");
	check_section(trailing, "2", "b");
	/* In a digest, a part without Content-Type is a message. */
	check_structure(digest, "[]multipart/digest:100 [1]message/rfc822:36 "
				"[1.1]text/plain:10 [2]text/plain:13");
	check_section(digest, "1.HEADER", "From: x@y\nSubject: d1\n\n");
	/* Bare LF line ends. */
	g_byte_array_append(lf_only, (const guint8 *)lf, (guint)strlen(lf));
	{
		GByteArray *b = mime_local_section(lf_only->data, lf_only->len, "1");

		g_assert_cmpmem(b->data, b->len, "bare", 4);
		g_byte_array_unref(b);
	}
	g_byte_array_unref(noclose);
	g_byte_array_unref(empty);
	g_byte_array_unref(trailing);
	g_byte_array_unref(digest);
	g_byte_array_unref(lf_only);
}

/* Boundaries as dovecot tells them apart: the innermost first (an inner
   boundary that starts with the outer one), an outer boundary that ends an
   inner multipart never closed, headers cut by a boundary. */
static void test_boundary_stack(void)
{
	GByteArray *prefix = crlf("Content-Type: multipart/mixed; boundary=b\n\n"
				  "--b\nContent-Type: multipart/alternative; boundary=b1\n\n"
				  "--b1\nContent-Type: text/plain\n\np\n"
				  "--b1\nContent-Type: text/html\n\nh\n--b1--\n"
				  "--b\nContent-Type: text/plain\n\nlast\n--b--\n");
	GByteArray *unclosed = crlf("Content-Type: multipart/mixed; boundary=o\n\n"
				    "--o\nContent-Type: multipart/mixed; boundary=i\n\n"
				    "--i\nContent-Type: text/plain\n\nnever closed\n"
				    "--o\nContent-Type: text/plain\n\nafter\n--o--\n");
	GByteArray *hdr = crlf("Content-Type: multipart/mixed; boundary=q\n\n"
			       "--q\nContent-Type: text/plain\n"
			       "--q\nContent-Type: text/plain\n\nx\n--q--\n");
	GByteArray *empty_mp = crlf("Content-Type: multipart/mixed; boundary=o\n\n"
				    "--o\nContent-Type: multipart/mixed; boundary=i\n\n"
				    "--o\nContent-Type: text/plain\n\nt\n--o--\n");
	GByteArray *deep = crlf("Content-Type: multipart/mixed; boundary=o\n\n"
				"--o\nContent-Type: message/rfc822\n\n"
				"Subject: l1\nContent-Type: multipart/mixed; boundary=m\n\n"
				"--m\nContent-Type: message/rfc822\n\n"
				"Subject: l2\nContent-Type: multipart/alternative; boundary=n\n\n"
				"--n\n\ndeep plain\n--n\nContent-Type: text/html\n\ndeep html\n--n--\n"
				"--m\nContent-Type: text/plain\n\nl1 text\n--m--\n--o--\n");

	check_structure(prefix, "[]multipart/mixed:184 [1]multipart/alternative:81 "
				"[1.1]text/plain:1 [1.2]text/html:1 [2]text/plain:4");
	/* A closing boundary keeps its line end. */
	check_section(prefix, "1", "--b1\nContent-Type: text/plain\n\np\n"
				   "--b1\nContent-Type: text/html\n\nh\n--b1--\n");
	check_section(prefix, "2", "last");
	check_structure(unclosed, "[]multipart/mixed:144 [1]multipart/mixed:45 "
				  "[1.1]text/plain:12 [2]text/plain:5");
	check_section(unclosed, "1.1", "never closed");
	check_structure(hdr, "[]multipart/mixed:74 [1]text/plain:0 [2]text/plain:1");
	check_section(hdr, "1.MIME", "Content-Type: text/plain");
	check_structure(empty_mp, "[]multipart/mixed:93 [1]multipart/mixed:0 [2]text/plain:1");
	check_section(empty_mp, "1.MIME", "Content-Type: multipart/mixed; boundary=i\n");
	check_structure(deep, "[]multipart/mixed:321 [1]message/rfc822:277 [1]multipart/mixed:219 "
			      "[1.1]message/rfc822:133 [1.1]multipart/alternative:69 "
			      "[1.1.1]text/plain:10 [1.1.2]text/html:9 [1.2]text/plain:7");
	check_section(deep, "1.1.TEXT", "--n\n\ndeep plain\n--n\nContent-Type: text/html\n\n"
					"deep html\n--n--\n");
	check_section(deep, "1.1.HEADER", "Subject: l2\n"
					  "Content-Type: multipart/alternative; boundary=n\n\n");
	check_section(deep, "1.1.MIME", "Content-Type: message/rfc822\n\n");
	check_section(deep, "1.1.1", "deep plain");
	check_section(deep, "1.2", "l1 text");
	g_byte_array_unref(prefix);
	g_byte_array_unref(unclosed);
	g_byte_array_unref(hdr);
	g_byte_array_unref(empty_mp);
	g_byte_array_unref(deep);
}

/* 100 multiparts inside each other: kept to MIME_DEPTH_MAX, said cut. */
static void test_deep(void)
{
	GString *m = g_string_new("Content-Type: multipart/mixed; boundary=b000\r\n\r\n");
	struct mime_structure *s;
	const struct mime_part *p;
	guint depth = 0;

	for (int i = 1; i < 100; i++)
		g_string_append_printf(m, "--b%03d\r\nContent-Type: multipart/mixed; boundary=b%03d\r\n\r\n",
				       i - 1, i);
	g_string_append(m, "--b099\r\n\r\ndeep\r\n");
	s = mime_local_structure((const guint8 *)m->str, m->len);
	g_assert_true(s->cut);
	for (p = s->root; p->children->len > 0; p = p->children->pdata[0])
		depth++;
	g_assert_cmpuint(depth, ==, MIME_DEPTH_MAX);
	mime_structure_free(s);
	/* And as messages inside messages. */
	g_string_truncate(m, 0);
	for (int i = 0; i < 100; i++)
		g_string_append(m, "Content-Type: message/rfc822\r\n\r\n");
	g_string_append(m, "\r\nbody\r\n");
	s = mime_local_structure((const guint8 *)m->str, m->len);
	g_assert_true(s->cut);
	g_assert_cmpuint(s->nparts, <=, MIME_DEPTH_MAX + 1);
	mime_structure_free(s);
	GByteArray *b = mime_local_section((const guint8 *)m->str, m->len, "1.1.1.HEADER");

	g_assert_nonnull(b);
	g_assert_cmpmem(b->data, b->len, "Content-Type: message/rfc822\r\n\r\n", 32);
	g_byte_array_unref(b);
	g_string_free(m, TRUE);
}

/* 12,000 parts: MIME_PARTS_MAX kept, said cut; the sections still answer. */
static void test_many_parts(void)
{
	GString *m = g_string_new("Content-Type: multipart/mixed; boundary=x\r\n\r\n");
	struct mime_structure *s;
	GByteArray *b;

	for (int i = 0; i < 12000; i++)
		g_string_append_printf(m, "--x\r\n\r\n%d\r\n", i);
	g_string_append(m, "--x--\r\n");
	s = mime_local_structure((const guint8 *)m->str, m->len);
	g_assert_true(s->cut);
	g_assert_cmpuint(s->nparts, ==, MIME_PARTS_MAX);
	g_assert_cmpuint(s->root->children->len, ==, MIME_PARTS_MAX - 1);
	mime_structure_free(s);
	b = mime_local_section((const guint8 *)m->str, m->len, "9999");
	g_assert_cmpmem(b->data, b->len, "9998", 4);
	g_byte_array_unref(b);
	g_assert_null(mime_local_section((const guint8 *)m->str, m->len, "10000"));
	g_string_free(m, TRUE);
}

/* Every prefix of the messages, and bytes that are hardly mail: a
   structure, no read outside the buffer (valgrind and ASan say). */
static void test_hostile(void)
{
	const char *msgs[] = { nested, forwarded };
	const char *sections[] = { "", "1", "2", "2.1", "2.HEADER", "HEADER", "TEXT", "1.MIME",
				   "3.TEXT", ".", "..", "1..2", "HEADER.HEADER", "x" };
	GRand *r = g_rand_new_with_seed(42);

	for (guint k = 0; k < G_N_ELEMENTS(msgs); k++) {
		GByteArray *m = crlf(msgs[k]);

		for (guint n = 0; n <= m->len; n++) {
			/* A copy of exactly n bytes, so that a read past it is seen. */
			guint8 *copy = g_memdup2(m->data, n);
			struct mime_structure *s = mime_local_structure(copy, n);

			g_assert_nonnull(s->root);
			mime_structure_free(s);
			for (guint i = 0; i < G_N_ELEMENTS(sections); i++) {
				GByteArray *b = mime_local_section(copy, n, sections[i]);

				if (b) {
					g_assert_cmpuint(b->len, <=, n);
					g_byte_array_unref(b);
				}
			}
			g_free(copy);
		}
		g_byte_array_unref(m);
	}
	for (int round = 0; round < 300; round++) {
		static const char *const pieces[] = {
			"--b\r\n", "--b--\r\n", "\r\n", "\n", "\r", "Content-Type: multipart/mixed; boundary=b\r\n",
			"Content-Type: message/rfc822\r\n", "Content-Type: multipart/digest; boundary=\"b\r\n",
			"x", ":", ";", "=\"", "\\", "--", "\0",
		};
		GByteArray *m = g_byte_array_new();
		int n = g_rand_int_range(r, 0, 60);

		for (int i = 0; i < n; i++) {
			const char *p = pieces[g_rand_int_range(r, 0, G_N_ELEMENTS(pieces))];

			g_byte_array_append(m, (const guint8 *)p, *p ? (guint)strlen(p) : 1);
		}
		guint8 *copy = g_memdup2(m->data, m->len);
		struct mime_structure *s = mime_local_structure(copy, m->len);
		GByteArray *b = mime_local_section(copy, m->len, "1.1");

		mime_structure_free(s);
		if (b)
			g_byte_array_unref(b);
		g_free(copy);
		g_byte_array_unref(m);
	}
	g_rand_free(r);
	/* Nothing at all. */
	struct mime_structure *s = mime_local_structure(NULL, 0);

	g_assert_cmpstr(s->root->section, ==, "1");
	mime_structure_free(s);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mime_local/nested", test_nested);
	g_test_add_func("/mime_local/message-rfc822", test_message_rfc822);
	g_test_add_func("/mime_local/single-part", test_single_part);
	g_test_add_func("/mime_local/boundaries", test_boundaries);
	g_test_add_func("/mime_local/boundary-stack", test_boundary_stack);
	g_test_add_func("/mime_local/deep", test_deep);
	g_test_add_func("/mime_local/many-parts", test_many_parts);
	g_test_add_func("/mime_local/hostile", test_hostile);
	return g_test_run();
}
