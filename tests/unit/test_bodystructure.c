/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * BODYSTRUCTURE into struct mime_part: each case is a FETCH response line
 * as a server sends it, run through the IMAP parser, so the values are the
 * ones the daemon sees.
 */
#include "protocol/imap_bodystructure.h"

#include <gio/gio.h>
#include <string.h>

static void on_response(void *ud, struct imap_response *r)
{
	struct imap_response **out = ud;

	g_assert_null(*out);
	*out = r;
}

/* The structure of "* 1 FETCH (UID 5 BODYSTRUCTURE <bs>)", or NULL and *err. */
static struct mime_structure *from_line(const char *bs, GError **err)
{
	static const struct imap_parser_callbacks cb = {.response = on_response};
	struct imap_limits lim;
	struct imap_response *r = NULL;
	struct imap_parser *p;
	struct mime_structure *s;
	GError *perr = NULL;
	char *line = g_strdup_printf("* 1 FETCH (UID 5 BODYSTRUCTURE %s)\r\n", bs);
	const struct imap_value *v;

	imap_limits_init_default(&lim);
	/* Room for the bounds cases: 101 nested lists, 10,001 parts. */
	lim.max_depth = 256;
	lim.max_line = 4 << 20;
	lim.max_elements = 1000000;
	p = imap_parser_new(&lim, &cb, &r);
	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), &perr), ==, (gssize)strlen(line));
	g_assert_no_error(perr);
	g_assert_nonnull(r);
	v = imap_fetch_item(r, "BODYSTRUCTURE");
	g_assert_nonnull(v);
	s = mime_structure_from_bodystructure(v, err);
	/* The structure owns its strings: the response can go. */
	imap_response_free(r);
	imap_parser_free(p);
	g_free(line);
	return s;
}

static void same_params(const GPtrArray *a, const GPtrArray *b)
{
	g_assert_cmpuint(a->len, ==, b->len);
	for (guint i = 0; i < a->len; i++) {
		const struct mime_param *x = a->pdata[i], *y = b->pdata[i];

		g_assert_cmpstr(x->name, ==, y->name);
		g_assert_cmpstr(x->value, ==, y->value);
	}
}

static void same_part(const struct mime_part *a, const struct mime_part *b)
{
	g_assert_cmpstr(a->section, ==, b->section);
	g_assert_cmpstr(a->type, ==, b->type);
	g_assert_cmpstr(a->subtype, ==, b->subtype);
	g_assert_cmpstr(a->id, ==, b->id);
	g_assert_cmpstr(a->description, ==, b->description);
	g_assert_cmpstr(a->encoding, ==, b->encoding);
	g_assert_cmpuint(a->size, ==, b->size);
	g_assert_cmpstr(a->disposition, ==, b->disposition);
	same_params(a->params, b->params);
	same_params(a->disp_params, b->disp_params);
	g_assert_cmpuint(a->children->len, ==, b->children->len);
	for (guint i = 0; i < a->children->len; i++)
		same_part(a->children->pdata[i], b->children->pdata[i]);
}

/* What is kept on disk reads back as the same structure. */
static void round_trip(const struct mime_structure *s)
{
	g_autofree char *text = mime_structure_render(s);
	GError *err = NULL;
	struct mime_structure *back = mime_structure_from_text(text, strlen(text), &err);

	g_assert_no_error(err);
	g_assert_nonnull(back);
	same_part(s->root, back->root);
	g_assert_cmpuint(s->nparts, ==, back->nparts);
	mime_structure_free(back);
}

static struct mime_structure *parse_ok(const char *bs)
{
	GError *err = NULL;
	struct mime_structure *s = from_line(bs, &err);

	g_assert_no_error(err);
	g_assert_nonnull(s);
	if (!s->cut)
		round_trip(s);
	return s;
}

/* "[section]type/subtype" of every part, children in braces. */
static void show_part(GString *o, const struct mime_part *p)
{
	g_string_append_printf(o, "[%s]%s/%s", p->section, p->type, p->subtype);
	if (p->children->len == 0)
		return;
	g_string_append_c(o, '{');
	for (guint i = 0; i < p->children->len; i++) {
		const struct mime_part *c = p->children->pdata[i];

		g_assert_true(c->parent == p);
		if (i)
			g_string_append_c(o, ',');
		show_part(o, c);
	}
	g_string_append_c(o, '}');
}

static char *show(const struct mime_structure *s)
{
	GString *o = g_string_new(NULL);

	g_assert_null(s->root->parent);
	show_part(o, s->root);
	return g_string_free(o, FALSE);
}

static const struct mime_part *find(const struct mime_structure *s, const char *section)
{
	const struct mime_part *p = mime_structure_find(s, section);

	g_assert_nonnull(p);
	return p;
}

/* RFC 3501 §7.4.2, the example of BODYSTRUCTURE. */
static void test_rfc3501(void)
{
	struct mime_structure *s = parse_ok(
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)"
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") "
	    "\"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" \"BASE64\" 4554 73) "
	    "\"MIXED\")");
	g_autofree char *got = show(s);
	const struct mime_part *p;

	g_assert_cmpstr(got, ==, "[]multipart/mixed{[1]text/plain,[2]text/plain}");
	g_assert_false(s->cut);
	g_assert_cmpuint(s->nparts, ==, 3);
	g_assert_cmpuint(s->root->params->len, ==, 0);
	g_assert_null(s->root->disposition);
	p = find(s, "1");
	g_assert_cmpstr(mime_param_get(p->params, "charset"), ==, "US-ASCII");
	g_assert_cmpstr(p->encoding, ==, "7bit");
	g_assert_cmpuint(p->size, ==, 1152);
	g_assert_null(p->id);
	g_assert_null(p->description);
	p = find(s, "2");
	g_assert_cmpstr(mime_param_get(p->params, "Name"), ==, "cc.diff");
	g_assert_cmpstr(p->id, ==, "<960723163407.20117h@cac.washington.edu>");
	g_assert_cmpstr(p->description, ==, "Compiler diff");
	g_assert_cmpstr(p->encoding, ==, "base64");
	g_assert_cmpuint(p->size, ==, 4554);
	g_assert_null(p->disposition);
	g_assert_null(mime_structure_find(s, "3"));
	g_assert_null(mime_structure_find(s, "1.1"));
	mime_structure_free(s);
}

/* A message that is not multipart has one part, "1" (RFC 3501 §6.4.5). */
static void test_single_part(void)
{
	struct mime_structure *s =
	    parse_ok("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)");
	g_autofree char *got = show(s);

	g_assert_cmpstr(got, ==, "[1]text/plain");
	g_assert_cmpuint(s->nparts, ==, 1);
	g_assert_true(find(s, "1") == s->root);
	g_assert_null(mime_structure_find(s, ""));
	g_assert_cmpuint(s->root->size, ==, 3028);
	mime_structure_free(s);

	/* A single attachment with extension data. */
	s = parse_ok("(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") NIL NIL \"BASE64\" 2048 NIL "
		     "(\"ATTACHMENT\" (\"FILENAME\" \"r.pdf\" \"SIZE\" \"1490\")) NIL NIL)");
	g_assert_cmpstr(s->root->section, ==, "1");
	g_assert_cmpstr(s->root->type, ==, "application");
	g_assert_cmpstr(s->root->subtype, ==, "pdf");
	g_assert_cmpstr(s->root->disposition, ==, "attachment");
	g_assert_cmpstr(mime_param_get(s->root->disp_params, "filename"), ==, "r.pdf");
	g_assert_cmpstr(mime_param_get(s->root->disp_params, "size"), ==, "1490");
	/* Case kept as sent. */
	g_assert_cmpstr(((struct mime_param *)s->root->disp_params->pdata[0])->name, ==,
			"FILENAME");
	mime_structure_free(s);
}

/* As Gmail sends them: upper case, extension data without language. */
static void test_gmail(void)
{
	struct mime_structure *s = parse_ok(
	    "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"7BIT\" 52 2 NIL NIL NIL)"
	    "(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\") NIL NIL \"QUOTED-PRINTABLE\" 311 6 NIL "
	    "NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"000000000000a1b2c3\") NIL NIL)"
	    "(\"IMAGE\" \"JPEG\" (\"NAME\" \"photo 1.jpg\") \"<f_kx1>\" NIL \"BASE64\" 183742 NIL "
	    "(\"ATTACHMENT\" (\"FILENAME\" \"photo 1.jpg\")) NIL)"
	    "(\"APPLICATION\" \"PDF\" (\"NAME\" \"=?UTF-8?B?w6kucGRm?=\") \"<f_kx2>\" NIL "
	    "\"BASE64\" 99 NIL (\"ATTACHMENT\" (\"FILENAME\" \"=?UTF-8?B?w6kucGRm?=\")) NIL) "
	    "\"MIXED\" (\"BOUNDARY\" \"000000000000d4e5f6\") NIL NIL)");
	g_autofree char *got = show(s);
	const struct mime_part *p;

	g_assert_cmpstr(got, ==,
			"[]multipart/mixed{[1]multipart/alternative{[1.1]text/plain,"
			"[1.2]text/html},[2]image/jpeg,[3]application/pdf}");
	g_assert_cmpuint(s->nparts, ==, 6);
	g_assert_cmpstr(mime_param_get(s->root->params, "boundary"), ==, "000000000000d4e5f6");
	p = find(s, "1");
	g_assert_cmpstr(mime_param_get(p->params, "BOUNDARY"), ==, "000000000000a1b2c3");
	g_assert_null(p->disposition);
	p = find(s, "1.2");
	g_assert_cmpstr(p->encoding, ==, "quoted-printable");
	g_assert_cmpuint(p->size, ==, 311);
	g_assert_true(p->parent == find(s, "1"));
	p = find(s, "2");
	g_assert_cmpstr(p->id, ==, "<f_kx1>");
	g_assert_cmpstr(p->disposition, ==, "attachment");
	g_assert_cmpstr(mime_param_get(p->disp_params, "filename"), ==, "photo 1.jpg");
	g_assert_cmpuint(p->size, ==, 183742);
	/* Raw: encoded words are the model's to decode. */
	p = find(s, "3");
	g_assert_cmpstr(mime_param_get(p->params, "name"), ==, "=?UTF-8?B?w6kucGRm?=");
	mime_structure_free(s);
}

/* As dovecot sends them: lower case, full extension data (md5, disposition,
   language, location), a literal for a parameter value. */
static void test_dovecot(void)
{
	struct mime_structure *s = parse_ok(
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\") NIL NIL "
	    "\"7bit\" 10 1 NIL NIL NIL NIL)"
	    "(\"application\" \"octet-stream\" (\"name\" {5}\r\na.bin) NIL \"the data\" "
	    "\"base64\" 100 NIL (\"attachment\" (\"filename\" \"a.bin\" \"size\" \"74\")) "
	    "(\"en\" \"fr\") \"http://example.org/a\") "
	    "\"mixed\" (\"boundary\" \"=-xyz\") (\"inline\" NIL) \"en\" NIL)");
	g_autofree char *got = show(s);
	const struct mime_part *p;

	g_assert_cmpstr(got, ==, "[]multipart/mixed{[1]text/plain,[2]application/octet-stream}");
	/* A multipart's own disposition, from body-ext-mpart. */
	g_assert_cmpstr(s->root->disposition, ==, "inline");
	g_assert_cmpuint(s->root->disp_params->len, ==, 0);
	g_assert_cmpstr(mime_param_get(s->root->params, "boundary"), ==, "=-xyz");
	p = find(s, "1");
	g_assert_cmpuint(p->params->len, ==, 2);
	g_assert_cmpstr(mime_param_get(p->params, "FORMAT"), ==, "flowed");
	g_assert_null(p->disposition);
	p = find(s, "2");
	g_assert_cmpstr(mime_param_get(p->params, "name"), ==, "a.bin");
	g_assert_cmpstr(p->description, ==, "the data");
	g_assert_cmpstr(p->disposition, ==, "attachment");
	g_assert_cmpuint(p->disp_params->len, ==, 2);
	g_assert_cmpstr(mime_param_get(p->disp_params, "Size"), ==, "74");
	g_assert_null(mime_param_get(p->disp_params, "nope"));
	mime_structure_free(s);
}

#define ENVELOPE                                                                                   \
	"(\"Mon, 7 Dec 2026 00:00:00 +0000\" \"Inner\" ((\"A\" NIL \"a\" \"example.org\")) "       \
	"((\"A\" NIL \"a\" \"example.org\")) ((\"A\" NIL \"a\" \"example.org\")) "                 \
	"((\"B\" NIL \"b\" \"example.org\")) NIL NIL NIL \"<id@example.org>\")"

/* A message/rfc822 part's body is numbered as a message below the part:
   a multipart body shares the part's section, its parts are S.1, S.2; a
   body that is not multipart is S.1. */
static void test_nested_message(void)
{
	struct mime_structure *s = parse_ok(
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)"
	    "(\"message\" \"rfc822\" (\"name\" \"fwd.eml\") NIL NIL \"7bit\" 500 " ENVELOPE " "
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 20 2 NIL "
	    "NIL NIL NIL)(\"image\" \"png\" NIL NIL NIL \"base64\" 300 NIL (\"inline\" "
	    "(\"filename\" \"p.png\")) NIL NIL) \"related\" (\"boundary\" \"b2\") NIL NIL NIL) "
	    "12 NIL (\"attachment\" (\"filename\" \"fwd.eml\")) NIL NIL)"
	    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"8BIT\" 77 " ENVELOPE " "
	    "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"8BIT\" 30 2) 4)"
	    " \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)");
	g_autofree char *got = show(s);
	const struct mime_part *p;

	g_assert_cmpstr(got, ==,
			"[]multipart/mixed{[1]text/plain,[2]message/rfc822{[2]multipart/related{"
			"[2.1]text/plain,[2.2]image/png}},[3]message/rfc822{[3.1]text/plain}}");
	g_assert_cmpuint(s->nparts, ==, 8);
	/* The message part comes first: it owns section "2". */
	p = find(s, "2");
	g_assert_cmpstr(p->type, ==, "message");
	g_assert_cmpuint(p->size, ==, 500);
	g_assert_cmpstr(p->disposition, ==, "attachment");
	g_assert_cmpstr(mime_param_get(p->disp_params, "filename"), ==, "fwd.eml");
	g_assert_cmpuint(p->children->len, ==, 1);
	p = find(s, "2.2");
	g_assert_cmpstr(p->disposition, ==, "inline");
	g_assert_cmpstr(mime_param_get(p->disp_params, "filename"), ==, "p.png");
	g_assert_cmpstr(p->parent->subtype, ==, "related");
	g_assert_true(p->parent->parent == find(s, "2"));
	p = find(s, "3.1");
	g_assert_cmpstr(p->encoding, ==, "8bit");
	g_assert_cmpuint(p->size, ==, 30);
	g_assert_cmpstr(p->parent->subtype, ==, "rfc822");
	mime_structure_free(s);

	/* A message that is one message/rfc822 part, itself holding one. */
	s = parse_ok("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 900 " ENVELOPE
		     " (\"message\" \"global\" NIL NIL NIL \"8bit\" 400 " ENVELOPE
		     " ((\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)(\"text\" \"html\" NIL NIL"
		     " NIL \"7bit\" 2 1) \"alternative\") 9) 20)");
	g_free(got);
	got = show(s);
	g_assert_cmpstr(got, ==,
			"[1]message/rfc822{[1.1]message/global{[1.1]multipart/alternative{"
			"[1.1.1]text/plain,[1.1.2]text/html}}}");
	mime_structure_free(s);
}

/* NIL where strings are expected, numbers as strings, missing fields. */
static void test_lenient(void)
{
	static const struct {
		const char *in;
		const char *shape;
		const char *encoding; /* of part "1" */
		guint64 size;	      /* of part "1" */
	} cases[] = {
	    {"(\"TEXT\" \"PLAIN\" NIL NIL NIL NIL 0 0)", "[1]text/plain", "7bit", 0},
	    {"(NIL NIL NIL NIL NIL NIL NIL)", "[1]application/octet-stream", "7bit", 0},
	    {"(\"text\" NIL NIL NIL NIL \"Base64\" \"123\")", "[1]text/plain", "base64", 123},
	    {"(\"Text\" \"Plain\")", "[1]text/plain", "7bit", 0},
	    {"(\"text\" \"plain\" NIL NIL NIL \"7bit\" \"12x\" 1)", "[1]text/plain", "7bit", 0},
	    {"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 18446744073709551615 1)", "[1]text/plain",
	     "7bit", G_MAXUINT64},
	    {"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 18446744073709551616 1)", "[1]text/plain",
	     "7bit", 0},
	    {"(\"text\" \"plain\" (\"charset\") NIL NIL \"7bit\" 1 1)", "[1]text/plain", "7bit", 1},
	    {"((\"text\" \"plain\" NIL NIL NIL NIL 4 1))", "[]multipart/mixed{[1]text/plain}",
	     "7bit", 4},
	    {"((\"text\" \"plain\" NIL NIL NIL NIL 4 1) NIL)", "[]multipart/mixed{[1]text/plain}",
	     "7bit", 4},
	    {"((\"text\" \"plain\" NIL NIL NIL NIL 4 1) \"SIGNED\" NIL NIL)",
	     "[]multipart/signed{[1]text/plain}", "7bit", 4},
	    /* message/rfc822 without a body in its place: a leaf. */
	    {"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 5)", "[1]message/rfc822", "7bit", 5},
	    {"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 5 NIL NIL 0)", "[1]message/rfc822",
	     "7bit", 5},
	    {"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 5 NIL \"x\" 0)", "[1]message/rfc822",
	     "7bit", 5},
	    {"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 5 NIL (\"x\") 0)", "[1]message/rfc822",
	     "7bit", 5},
	    {"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 5 NIL (NIL NIL) 0)",
	     "[1]message/rfc822{[1.1]application/octet-stream}", "7bit", 5},
	    /* Odd extension data is ignored. */
	    {"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1 NIL ((\"a\") (\"b\")) (1 2) ())",
	     "[1]text/plain", "7bit", 1},
	    {"(\"image\" \"gif\" NIL NIL NIL \"base64\" 1 NIL () NIL)", "[1]image/gif", "base64",
	     1},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mime_structure *s;
		g_autofree char *got = NULL;
		const struct mime_part *p;

		g_test_message("%s", cases[i].in);
		s = parse_ok(cases[i].in);
		got = show(s);
		g_assert_cmpstr(got, ==, cases[i].shape);
		p = find(s, "1");
		g_assert_cmpstr(p->encoding, ==, cases[i].encoding);
		g_assert_cmpuint(p->size, ==, cases[i].size);
		g_assert_false(s->cut);
		mime_structure_free(s);
	}
}

/* Dispositions as servers send them, NIL and odd ones included. */
static void test_disposition(void)
{
	static const struct {
		const char *ext; /* after md5 of an image/png */
		const char *disposition;
		const char *filename;
	} cases[] = {
	    {"NIL", NULL, NULL},
	    {"(\"ATTACHMENT\" NIL)", "attachment", NULL},
	    {"(\"Inline\" (\"FileName\" \"x.png\"))", "inline", "x.png"},
	    {"(\"attachment\" (\"filename\" NIL \"filename*\" \"utf-8''%C3%A9.png\"))",
	     "attachment", NULL},
	    {"\"attachment\"", "attachment", NULL},
	    {"(NIL (\"filename\" \"x\"))", NULL, NULL},
	    {"()", NULL, NULL},
	    {"((\"a\") \"b\")", NULL, NULL},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *in = g_strdup_printf(
		    "(\"image\" \"png\" NIL NIL NIL \"base64\" 8 NIL %s NIL NIL)", cases[i].ext);
		struct mime_structure *s;

		g_test_message("%s", in);
		s = parse_ok(in);
		g_assert_cmpstr(s->root->disposition, ==, cases[i].disposition);
		g_assert_cmpstr(mime_param_get(s->root->disp_params, "filename"), ==,
				cases[i].filename);
		if (i == 3)
			g_assert_cmpstr(mime_param_get(s->root->disp_params, "FILENAME*"), ==,
					"utf-8''%C3%A9.png");
		mime_structure_free(s);
	}
}

static void test_invalid(void)
{
	static const char *const cases[] = {
	    "NIL",
	    "()",
	    "\"TEXT\"",
	    "12",
	    "(\"TEXT\")",
	    "(NIL)",
	    "((\"text\" \"plain\" NIL NIL NIL NIL 1 1)(\"x\") \"mixed\")",
	    "((\"text\" \"plain\" NIL NIL NIL NIL 1 1)() \"mixed\")",
	    "(((\"text\") \"mixed\") \"mixed\")",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		GError *err = NULL;
		struct mime_structure *s;

		g_test_message("%s", cases[i]);
		s = from_line(cases[i], &err);
		g_assert_null(s);
		g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		g_error_free(err);
	}
	g_assert_null(mime_structure_from_bodystructure(NULL, NULL));
}

/* 101 multiparts one inside the other: cut at MIME_DEPTH_MAX levels. */
static void test_depth_bound(void)
{
	GString *in = g_string_new(NULL);
	struct mime_structure *s;
	const struct mime_part *p;
	guint levels = 0;

	for (int i = 0; i < 101; i++)
		g_string_append_c(in, '(');
	g_string_append(in, "\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)");
	for (int i = 0; i < 100; i++)
		g_string_append(in, " \"mixed\")");
	s = parse_ok(in->str);
	g_assert_true(s->cut);
	g_assert_cmpuint(s->nparts, ==, MIME_DEPTH_MAX);
	for (p = s->root; p; p = p->children->len ? p->children->pdata[0] : NULL)
		levels++;
	g_assert_cmpuint(levels, ==, MIME_DEPTH_MAX);
	g_assert_nonnull(mime_structure_find(s, "1.1.1"));
	mime_structure_free(s);
	g_string_free(in, TRUE);

	/* message/rfc822 inside message/rfc822, 80 deep. */
	in = g_string_new(NULL);
	for (int i = 0; i < 80; i++)
		g_string_append(in, "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 1 NIL ");
	g_string_append(in, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)");
	for (int i = 0; i < 80; i++)
		g_string_append(in, " 1)");
	s = parse_ok(in->str);
	g_assert_true(s->cut);
	g_assert_cmpuint(s->nparts, ==, MIME_DEPTH_MAX);
	mime_structure_free(s);
	g_string_free(in, TRUE);

	/* Exactly MIME_DEPTH_MAX levels are not cut. */
	in = g_string_new(NULL);
	for (int i = 0; i < MIME_DEPTH_MAX; i++)
		g_string_append_c(in, '(');
	g_string_append(in, "\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)");
	for (int i = 0; i < MIME_DEPTH_MAX - 1; i++)
		g_string_append(in, " \"mixed\")");
	s = parse_ok(in->str);
	g_assert_false(s->cut);
	g_assert_cmpuint(s->nparts, ==, MIME_DEPTH_MAX);
	mime_structure_free(s);
	g_string_free(in, TRUE);
}

/* 10,001 parts: the first MIME_PARTS_MAX (root included) are kept. */
static void test_parts_bound(void)
{
	GString *in = g_string_new("(");
	struct mime_structure *s;

	for (int i = 0; i < 10001; i++)
		g_string_append(in, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)");
	g_string_append(in, " \"mixed\")");
	s = parse_ok(in->str);
	g_assert_true(s->cut);
	g_assert_cmpuint(s->nparts, ==, MIME_PARTS_MAX);
	g_assert_cmpuint(s->root->children->len, ==, MIME_PARTS_MAX - 1);
	g_assert_nonnull(mime_structure_find(s, "9999"));
	g_assert_null(mime_structure_find(s, "10000"));
	mime_structure_free(s);
	g_string_free(in, TRUE);

	/* Just under: not cut. */
	in = g_string_new("(");
	for (int i = 0; i < MIME_PARTS_MAX - 1; i++)
		g_string_append(in, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)");
	g_string_append(in, " \"mixed\")");
	s = parse_ok(in->str);
	g_assert_false(s->cut);
	g_assert_cmpuint(s->nparts, ==, MIME_PARTS_MAX);
	mime_structure_free(s);
	g_string_free(in, TRUE);
}

/* The builder API that model/mime_local.c uses. */
static void test_builder(void)
{
	struct mime_structure *s = g_new0(struct mime_structure, 1);
	struct mime_part *root = mime_part_new("", "MultiPart", "MIXED");
	struct mime_part *a = mime_part_new("1", "Text", "Plain");
	struct mime_part *b = mime_part_new("2", NULL, NULL);
	struct mime_param *prm = g_new(struct mime_param, 1);

	g_assert_cmpstr(root->type, ==, "multipart");
	g_assert_cmpstr(root->subtype, ==, "mixed");
	g_assert_cmpstr(a->encoding, ==, "7bit");
	g_assert_cmpstr(b->type, ==, "application");
	g_assert_cmpstr(b->subtype, ==, "octet-stream");
	g_assert_cmpuint(a->params->len + a->disp_params->len + a->children->len, ==, 0);
	prm->name = g_strdup("CharSet");
	prm->value = g_strdup("utf-8");
	g_ptr_array_add(a->params, prm);
	mime_part_add_child(root, a);
	mime_part_add_child(root, b);
	g_assert_true(a->parent == root);
	s->root = root;
	s->nparts = 3;
	g_assert_true(mime_structure_find(s, "") == root);
	g_assert_true(mime_structure_find(s, "2") == b);
	g_assert_null(mime_structure_find(s, NULL));
	g_assert_null(mime_structure_find(NULL, "1"));
	g_assert_cmpstr(mime_param_get(a->params, "charset"), ==, "utf-8");
	g_assert_cmpstr(mime_param_get(a->params, "CHARSET"), ==, "utf-8");
	g_assert_null(mime_param_get(a->params, "charse"));
	g_assert_null(mime_param_get(NULL, "charset"));
	mime_structure_free(s);
	mime_structure_free(NULL);
	mime_part_free(NULL);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bodystructure/rfc3501", test_rfc3501);
	g_test_add_func("/bodystructure/single_part", test_single_part);
	g_test_add_func("/bodystructure/gmail", test_gmail);
	g_test_add_func("/bodystructure/dovecot", test_dovecot);
	g_test_add_func("/bodystructure/nested_message", test_nested_message);
	g_test_add_func("/bodystructure/lenient", test_lenient);
	g_test_add_func("/bodystructure/disposition", test_disposition);
	g_test_add_func("/bodystructure/invalid", test_invalid);
	g_test_add_func("/bodystructure/depth_bound", test_depth_bound);
	g_test_add_func("/bodystructure/parts_bound", test_parts_bound);
	g_test_add_func("/bodystructure/builder", test_builder);
	return g_test_run();
}
