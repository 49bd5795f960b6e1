/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/mime_view.h"

#include <string.h>

#include "model/mime_local.h"

/* The structure of a message written with LF line ends. */
static struct mime_structure *structure(const char *lf)
{
	GString *m = g_string_new(NULL);
	struct mime_structure *s;

	for (const char *c = lf; *c; c++) {
		if (*c == '\n')
			g_string_append_c(m, '\r');
		g_string_append_c(m, *c);
	}
	s = mime_local_structure((const guint8 *)m->str, m->len);
	g_string_free(m, TRUE);
	return s;
}

/* The entries as "name=section" (with "!" for html_as_text), space-separated. */
static char *listing(GPtrArray *entries)
{
	GString *out = g_string_new(NULL);

	for (guint i = 0; i < entries->len; i++) {
		const struct mime_entry *e = entries->pdata[i];

		g_string_append_printf(out, "%s%s=%s%s", i ? " " : "", e->name, e->section,
				       e->html_as_text ? "!" : "");
	}
	return g_string_free(out, FALSE);
}

static void check_view(const struct mime_structure *s, const struct mime_part *msg,
		       const char *want, const char *want_parts)
{
	GPtrArray *v = mime_view_message(s, msg);
	GPtrArray *p = mime_view_parts(s, msg);
	char *got = listing(v), *got_parts = listing(p);

	g_assert_cmpstr(got, ==, want);
	g_assert_cmpstr(got_parts, ==, want_parts);
	g_free(got);
	g_free(got_parts);
	g_ptr_array_unref(v);
	g_ptr_array_unref(p);
}

static const char mixed[] =
	"Subject: x\n"
	"Content-Type: multipart/mixed; boundary=o\n\n"
	"--o\n"
	"Content-Type: multipart/alternative; boundary=i\n\n"
	"--i\nContent-Type: text/plain\n\nplain\n"
	"--i\nContent-Type: text/html\n\n<p>html</p>\n"
	"--i--\n"
	"--o\n"
	"Content-Type: application/pdf\n"
	"Content-Disposition: attachment; filename=\"report.pdf\"\n\nJVBE\n"
	"--o\n"
	"Content-Type: application/pdf; name=\"report.pdf\"\n\nJVBE\n"
	"--o\n"
	"Content-Type: image/png\nContent-Disposition: attachment\n\niVBO\n"
	"--o\n"
	"Content-Type: text/plain\nContent-Disposition: attachment; filename=text\n\nt\n"
	"--o\n"
	"Content-Type: text/plain\nContent-Disposition: attachment; filename=parts\n\nt\n"
	"--o\n"
	"Content-Type: text/plain\nContent-Disposition: inline\n\nsecond text\n"
	"--o--\n";

static void test_layout(void)
{
	struct mime_structure *s = structure(mixed);
	GPtrArray *v = mime_view_message(s, NULL);
	const struct mime_entry *e;

	check_view(s, NULL,
		   "text=1.1 html=1.2 headers=HEADER report.pdf=2 report~2.pdf=3 part-4=4 "
		   "text~2=5 parts~2=6 parts=",
		   "1.1=1.1 1.2=1.2 2=2 3=3 4=4 5=5 6=6 7=7");
	e = mime_view_find(v, "report~2.pdf");
	g_assert_nonnull(e);
	g_assert_cmpint(e->kind, ==, MIME_ENTRY_ATTACHMENT);
	g_assert_true(e->part == mime_structure_find(s, "3"));
	e = mime_view_find(v, "parts");
	g_assert_cmpint(e->kind, ==, MIME_ENTRY_PARTS_DIR);
	g_assert_null(e->part);
	g_assert_cmpint(mime_view_find(v, "headers")->kind, ==, MIME_ENTRY_HEADERS);
	g_assert_cmpint(mime_view_find(v, "text")->kind, ==, MIME_ENTRY_TEXT);
	g_assert_cmpint(mime_view_find(v, "html")->kind, ==, MIME_ENTRY_HTML);
	g_assert_null(mime_view_find(v, "nothing"));
	g_ptr_array_unref(v);
	mime_structure_free(s);
}

static void test_text_choice(void)
{
	struct mime_structure *s;

	/* One part: it is the text, and the part "1". */
	s = structure("Subject: x\n\nhello\n");
	check_view(s, NULL, "text=1 headers=HEADER parts=", "1=1");
	mime_structure_free(s);
	/* HTML only: the text is made from it, and it is the html too. */
	s = structure("Content-Type: text/html\n\n<p>x</p>\n");
	check_view(s, NULL, "text=1! html=1 headers=HEADER parts=", "1=1");
	mime_structure_free(s);
	/* HTML before plain in an alternative: plain is still the text. */
	s = structure("Content-Type: multipart/alternative; boundary=a\n\n"
		      "--a\nContent-Type: text/html\n\nh\n--a\nContent-Type: text/plain\n\np\n--a--\n");
	check_view(s, NULL, "text=2 html=1 headers=HEADER parts=", "1=1 2=2");
	mime_structure_free(s);
	/* A text/plain attachment is not the text; no text at all then. */
	s = structure("Content-Type: multipart/mixed; boundary=a\n\n"
		      "--a\nContent-Type: image/gif; name=a.gif\n\nR0lG\n"
		      "--a\nContent-Type: text/plain; name=notes.txt\n\nn\n--a--\n");
	check_view(s, NULL, "headers=HEADER a.gif=1 notes.txt=2 parts=", "1=1 2=2");
	mime_structure_free(s);
	/* The text of a message inside is not the outer one's. */
	s = structure("Content-Type: multipart/mixed; boundary=a\n\n"
		      "--a\nContent-Type: message/rfc822\n\nSubject: in\n\ninner\n"
		      "--a\nContent-Type: text/html\n\nouter\n--a--\n");
	check_view(s, NULL, "text=2! html=2 headers=HEADER parts=", "1=1 2=2");
	mime_structure_free(s);
}

static void test_nested_message(void)
{
	struct mime_structure *s = structure(
		"Content-Type: multipart/mixed; boundary=a\n\n"
		"--a\nContent-Type: text/plain\n\nsee below\n"
		"--a\nContent-Type: message/rfc822\nContent-Disposition: attachment; "
		"filename=fwd.eml\n\n"
		"Subject: in\nContent-Type: multipart/mixed; boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\ninner\n"
		"--b\nContent-Type: application/zip; name=x.zip\n\nUEsD\n"
		"--b\nContent-Type: message/rfc822\n\nSubject: deepest\n\nd\n"
		"--b--\n"
		"--a--\n");
	const struct mime_part *fwd = mime_structure_find(s, "2");
	GPtrArray *parts = mime_view_parts(s, NULL);
	const struct mime_entry *dir = mime_view_find(parts, "2");

	check_view(s, NULL, "text=1 headers=HEADER fwd.eml=2 parts=", "1=1 2=2");
	g_assert_cmpint(dir->kind, ==, MIME_ENTRY_MESSAGE_DIR);
	g_assert_true(dir->part == fwd);
	/* The message inside: its own directory, its parts by full number. */
	check_view(s, fwd, "text=2.1 headers=2.HEADER x.zip=2.2 parts=2", "2.1=2.1 2.2=2.2 2.3=2.3");
	check_view(s, mime_structure_find(s, "2.3"), "text=2.3.1 headers=2.3.HEADER parts=2.3",
		   "2.3.1=2.3.1");
	g_ptr_array_unref(parts);
	mime_structure_free(s);
}

static const struct {
	const char *disposition; /* the header fields of the part */
	const char *name;	 /* the decoded filename */
	const char *entry;	 /* its entry's name */
} filenames[] = {
	{ "Content-Disposition: attachment; filename=plain.txt", "plain.txt", "plain.txt" },
	{ "Content-Disposition: attachment;\n filename*=UTF-8''%C3%A4rger.pdf",
	  "\xc3\xa4rger.pdf", "\xc3\xa4rger.pdf" },
	{ "Content-Disposition: attachment;\n filename*0*=iso-8859-1'de'%E4r;\n"
	  " filename*1=\"ger und \";\n filename*2=\"mehr.pdf\"",
	  "\xc3\xa4rger und mehr.pdf", "\xc3\xa4rger und mehr.pdf" },
	{ "Content-Disposition: attachment;\n filename=\"=?UTF-8?B?w6RyZ2VyLnBkZg==?=\"",
	  "\xc3\xa4rger.pdf", "\xc3\xa4rger.pdf" },
	{ "Content-Type: application/octet-stream;\n name=\"=?ISO-8859-1?Q?K=F6ln.doc?=\"",
	  "K\xc3\xb6ln.doc", "K\xc3\xb6ln.doc" },
	{ "Content-Disposition: attachment; filename=\"C:\\\\Users\\\\me\\\\evil.exe\"",
	  "C:\\Users\\me\\evil.exe", "evil.exe" },
	{ "Content-Disposition: attachment; filename=\"../../etc/passwd\"", "../../etc/passwd",
	  "passwd" },
	{ "Content-Disposition: attachment; filename=\".bashrc\"", ".bashrc", "%2Ebashrc" },
	{ "Content-Disposition: attachment; filename=\"a%b\"", "a%b", "a%25b" },
	{ "Content-Disposition: attachment; filename=\"12.eml\"", "12.eml", "%312.eml" },
	{ "Content-Disposition: attachment; filename=\"dir/\"", "dir/", "part-1" },
	/* the disposition's filename before the type's name */
	{ "Content-Type: text/x-a; name=type.txt\nContent-Disposition: inline; filename=disp.txt",
	  "disp.txt", "disp.txt" },
};

static void test_filenames(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(filenames); i++) {
		char *msg = g_strdup_printf("Content-Type: multipart/mixed; boundary=z\n\n"
					    "--z\n%s\n\nx\n--z--\n",
					    filenames[i].disposition);
		struct mime_structure *s = structure(msg);
		const struct mime_part *p = mime_structure_find(s, "1");
		char *name = mime_part_filename(p);
		GPtrArray *v = mime_view_message(s, NULL);
		const struct mime_entry *e = v->len > 1 ? v->pdata[1] : NULL;

		g_test_message("%s", filenames[i].disposition);
		g_assert_cmpstr(name, ==, filenames[i].name);
		g_assert_nonnull(e);
		g_assert_cmpint(e->kind, ==, MIME_ENTRY_ATTACHMENT);
		g_assert_cmpstr(e->name, ==, filenames[i].entry);
		g_free(name);
		g_ptr_array_unref(v);
		mime_structure_free(s);
		g_free(msg);
	}
}

/* Long names are cut on a character boundary before the extension; the
   "~N" of a collision goes before the extension too. */
static void test_long_names(void)
{
	GString *long_name = g_string_new(NULL);
	GString *msg = g_string_new("Content-Type: multipart/mixed; boundary=z\n\n");
	struct mime_structure *s;
	GPtrArray *v;

	for (int i = 0; i < 200; i++)
		g_string_append(long_name, "\xc3\xa4"); /* 400 bytes */
	g_string_append(long_name, ".pdf");
	for (int i = 0; i < 2; i++)
		g_string_append_printf(msg, "--z\nContent-Type: application/pdf; name=\"%s\"\n\nx\n",
				       long_name->str);
	g_string_append(msg, "--z--\n");
	s = structure(msg->str);
	v = mime_view_message(s, NULL);
	g_assert_cmpuint(v->len, ==, 4);
	for (guint i = 1; i <= 2; i++) {
		const char *name = ((struct mime_entry *)v->pdata[i])->name;

		g_assert_cmpuint(strlen(name), <=, 255);
		g_assert_true(g_utf8_validate(name, -1, NULL));
		g_assert_true(g_str_has_suffix(name, i == 1 ? "\xc3\xa4.pdf" : "\xc3\xa4~2.pdf"));
	}
	g_assert_cmpuint(strlen(((struct mime_entry *)v->pdata[1])->name), ==, 250 + 4); /* 251 bytes of room: 125 two-byte characters */
	g_ptr_array_unref(v);
	mime_structure_free(s);
	g_string_free(msg, TRUE);
	g_string_free(long_name, TRUE);
}

/* 10,000 attachments of one name: each its own name, found quickly. */
static void test_many_same_name(void)
{
	GString *msg = g_string_new("Content-Type: multipart/mixed; boundary=z\n\n");
	struct mime_structure *s;
	GPtrArray *v, *p;
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (int i = 0; i < 12000; i++)
		g_string_append(msg, "--z\nContent-Type: application/pdf; name=a.pdf\n\nx\n");
	g_string_append(msg, "--z--\n");
	s = structure(msg->str);
	g_assert_true(s->cut);
	v = mime_view_message(s, NULL);
	p = mime_view_parts(s, NULL);
	g_assert_cmpuint(v->len, ==, 1 + (MIME_PARTS_MAX - 1) + 1);
	g_assert_cmpuint(p->len, ==, MIME_PARTS_MAX - 1);
	for (guint i = 0; i < v->len; i++)
		g_assert_true(g_hash_table_add(seen, ((struct mime_entry *)v->pdata[i])->name));
	g_assert_nonnull(mime_view_find(v, "a~9999.pdf"));
	g_hash_table_unref(seen);
	g_ptr_array_unref(v);
	g_ptr_array_unref(p);
	mime_structure_free(s);
	g_string_free(msg, TRUE);
}

/* A structure made by hand, as the BODYSTRUCTURE reader makes them. */
static void test_built_structure(void)
{
	struct mime_structure s = { 0 };
	struct mime_part *root = mime_part_new("", "MULTIPART", "Mixed");
	struct mime_part *a = mime_part_new("1", "text", "plain");
	struct mime_part *b = mime_part_new("2", "application", "octet-stream");
	struct mime_param *fn = g_new(struct mime_param, 1);

	fn->name = g_strdup("filename*");
	fn->value = g_strdup("utf-8''na%C3%AFve.bin");
	g_ptr_array_add(b->disp_params, fn);
	b->disposition = g_strdup("attachment");
	mime_part_add_child(root, a);
	mime_part_add_child(root, b);
	s.root = root;
	s.nparts = 3;
	g_assert_cmpstr(root->type, ==, "multipart");
	g_assert_cmpstr(root->subtype, ==, "mixed");
	check_view(&s, NULL, "text=1 headers=HEADER na\xc3\xafve.bin=2 parts=", "1=1 2=2");
	g_assert_true(mime_structure_find(&s, "2") == b);
	g_assert_null(mime_structure_find(&s, "3"));
	g_assert_cmpstr(mime_param_get(b->disp_params, "FILENAME*"), ==, "utf-8''na%C3%AFve.bin");
	mime_part_free(root);
	/* Nothing: just the headers and an empty parts/. */
	s.root = NULL;
	check_view(&s, NULL, "headers=HEADER parts=", "");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mime_view/layout", test_layout);
	g_test_add_func("/mime_view/text-choice", test_text_choice);
	g_test_add_func("/mime_view/nested-message", test_nested_message);
	g_test_add_func("/mime_view/filenames", test_filenames);
	g_test_add_func("/mime_view/long-names", test_long_names);
	g_test_add_func("/mime_view/many-same-name", test_many_same_name);
	g_test_add_func("/mime_view/built-structure", test_built_structure);
	return g_test_run();
}
