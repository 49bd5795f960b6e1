/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/names.h"

#include <string.h>

#define A10 "aaaaaaaaaa"
#define A60 A10 A10 A10 A10 A10 A10
#define B10 "bbbbbbbbbb"
#define B130 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10

/*
 * Subject -> message file name. These are rsync's keys: a change to any line
 * here renames users' mail. Add vectors; never edit one.
 */
static const struct {
	guint32 uid;
	const char *subject;
	const char *name;
} subject_vectors[] = {
	{ 4711, "Meeting notes for Tuesday", "4711-Meeting_notes_for_Tuesday.eml" },
	{ 4711, "Re: Fwd: x", "4711-Re_Fwd_x.eml" },
	{ 4711, "RE: AW: WG: Angebot", "4711-RE_AW_WG_Angebot.eml" },
	{ 4711, "Re:Hi", "4711-ReHi.eml" },
	/* whitespace runs, tabs, folding, trimming */
	{ 4711, "a\t\t b", "4711-a_b.eml" },
	{ 4711, "line one\r\n line two", "4711-line_one_line_two.eml" },
	{ 4711, "line one\r\n\tline two", "4711-line_one_line_two.eml" },
	{ 4711, "  lead and trail \t", "4711-lead_and_trail.eml" },
	{ 4711, "non\xc2\xa0" "breaking", "4711-non_breaking.eml" },
	{ 4711, "ideographic\xe3\x80\x80space", "4711-ideographic_space.eml" },
	/* whitespace becomes '_' before anything is dropped */
	{ 4711, "a / b", "4711-a__b.eml" },
	{ 4711, "a/b", "4711-ab.eml" },
	{ 4711, "../../etc/passwd", "4711-....etcpasswd.eml" },
	{ 4711, "Price: $5 (50% off!)", "4711-Price_5_50_off.eml" },
	{ 4711, "[PATCH v2 3/7] fix #42; \"quoted\" <tag> {x} |y| ~z ^ * & ' `",
	  "4711-PATCH_v2_37_fix_42_quoted_tag_x_y_z_____.eml" },
	{ 4711, "user@example.com, a+b=c", "4711-user@example.com,_a+b=c.eml" },
	{ 4711, "v1.2.3-rc_4", "4711-v1.2.3-rc_4.eml" },
	{ 4711, ".hidden", "4711-.hidden.eml" },
	{ 4711, "a\x01" "b\x7f" "c", "4711-abc.eml" },
	{ 4711, "a\vb\fc\x1f" "d", "4711-ab_cd.eml" },
	/* RFC 2047 */
	{ 4711, "=?UTF-8?B?R3LDvMOfZQ==?=", "4711-Gr\xc3\xbc\xc3\x9f" "e.eml" },
	{ 4711, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=",
	  "4711-Gr\xc3\xbc\xc3\x9f" "e_aus_K\xc3\xb6ln.eml" },
	{ 4711, "=?utf-8?q?Stra=c3=9fe?=", "4711-Stra\xc3\x9f" "e.eml" },
	{ 4711, "=?ISO-8859-1?Q?Gr=FC=DFe?=", "4711-Gr\xc3\xbc\xc3\x9f" "e.eml" },
	{ 4711, "=?iso-8859-1*de?q?=E4?=", "4711-\xc3\xa4.eml" },
	{ 4711, "=?ISO-2022-JP?B?GyRCJEskWyRzGyhC?=", "4711-\xe3\x81\xab\xe3\x81\xbb\xe3\x82\x93.eml" },
	{ 4711, "=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "4711-ab.eml" },
	{ 4711, "=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=", "4711-ab.eml" },
	{ 4711, "=?UTF-8?Q?a?= x =?UTF-8?Q?b?=", "4711-a_x_b.eml" },
	{ 4711, "=?UTF-8?Q?a_b?=", "4711-a_b.eml" },
	{ 4711, "Re: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= again", "4711-Re_Gr\xc3\xbc\xc3\x9f" "e_again.eml" },
	{ 4711, "=?UTF-8?Q?Gr=C3?= =?UTF-8?Q?=BCn?=", "4711-Gr\xc3\xbcn.eml" },
	{ 4711, "=?UTF-8?B?R3LD?= =?UTF-8?B?vG4=?=", "4711-Gr\xc3\xbcn.eml" },
	{ 4711, "=?ISO-8859-1?Q?caf=E9?= =?UTF-8?Q?_ok?=", "4711-caf\xc3\xa9_ok.eml" },
	{ 4711, "foo=?UTF-8?Q?bar?=", "4711-foobar.eml" },
	{ 4711, "=?UTF-8?Q?abc", "4711-=UTF-8Qabc.eml" },
	{ 4711, "=?UTF-8?X?abc?=", "4711-=UTF-8Xabc=.eml" },
	{ 4711, "=?x-unknown?Q?Gr=FC=DFe?=", "4711-Gr\xc3\xbc\xc3\x9f" "e.eml" },
	{ 4711, "=?../x?Q?=E4?=", "4711-\xc3\xa4.eml" },
	{ 4711, "=?UTF-8?Q?bad=FF=FEx?=", "4711-badx.eml" },
	{ 4711, "=?UTF-8?Q?x=00y?=", "4711-xy.eml" },
	/* raw 8-bit: UTF-8, else windows-1252, else ISO-8859-1 */
	{ 4711, "Gr\xc3\xbc\xc3\x9f" "e", "4711-Gr\xc3\xbc\xc3\x9f" "e.eml" },
	{ 4711, "Gr\xfc\xdf" "e", "4711-Gr\xc3\xbc\xc3\x9f" "e.eml" },
	{ 4711, "\x9a" "alom", "4711-\xc5\xa1" "alom.eml" },
	{ 4711, "caf\xe9\x81", "4711-caf\xc3\xa9.eml" },
	/* Unicode letters and digits of any script, NFC */
	{ 4711, "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xce\x91\xce\x92\xce\x93 \xd0\x94\xd0\xbe\xd0\xbc "
		"\xe4\xb8\xad\xe6\x96\x87 \xd9\xa1\xd9\xa2\xd9\xa3",
	  "4711-\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9_\xce\x91\xce\x92\xce\x93_\xd0\x94\xd0\xbe\xd0\xbc_"
	  "\xe4\xb8\xad\xe6\x96\x87_\xd9\xa1\xd9\xa2\xd9\xa3.eml" },
	{ 4711, "e\xcc\x81t\xc3\xa9", "4711-\xc3\xa9t\xc3\xa9.eml" },
	/* emoji are not letters */
	{ 4711, "Hello \xf0\x9f\x98\x80 World", "4711-Hello__World.eml" },
	{ 4711, "\xf0\x9f\x98\x80 smile", "4711-_smile.eml" },
	{ 4711, "\xf0\x9f\x98\x80", "4711.eml" },
	/* cut at 64 bytes, on a character boundary */
	{ 4711, A60 "aaa\xc3\xbc" B130, "4711-" A60 "aaa.eml" },
	{ 4711, A60 "aa\xc3\xbc" B130, "4711-" A60 "aa\xc3\xbc.eml" },
	{ 4711, A60 "aaaab", "4711-" A60 "aaaa.eml" },
	{ 4711, A60 "aaa b", "4711-" A60 "aaa_.eml" },
	{ 4711, A60 "aaaa b", "4711-" A60 "aaaa.eml" },
	/* nothing left */
	{ 4711, "!!!???***", "4711.eml" },
	{ 4711, "!!! ???", "4711-_.eml" },
	{ 4711, "", "4711.eml" },
	{ 4711, " \t ", "4711.eml" },
	{ 4711, NULL, "4711.eml" },
	/* UID range */
	{ 1, "x", "1-x.eml" },
	{ 4294967295u, "x", "4294967295-x.eml" },
	{ 4294967295u, NULL, "4294967295.eml" },
};

static void test_subject_vectors(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(subject_vectors); i++) {
		g_autofree char *slug = names_subject_slug(subject_vectors[i].subject);
		g_autofree char *name = names_message_name(subject_vectors[i].uid, slug);
		guint32 uid = 0;

		if (g_strcmp0(name, subject_vectors[i].name) != 0)
			g_error("vector %zu: got '%s', want '%s'", i, name,
				subject_vectors[i].name);
		g_assert_cmpuint(strlen(slug), <=, NAMES_SLUG_MAX);
		g_assert_true(g_utf8_validate(name, -1, NULL));
		g_assert_cmpuint(strlen(name), <=, 255);
		g_assert_true(name[0] != '.');
		g_assert_null(strchr(name, '/'));
		g_assert_true(names_parse_uid(name, &uid));
		g_assert_cmpuint(uid, ==, subject_vectors[i].uid);
	}
}

/* Every ASCII byte is classed as GLib's Unicode tables class it (names.c
   answers ASCII without them), alone and next to an encoded word, which
   takes the decoding path. */
static void test_ascii_follows_unicode_classes(void)
{
	for (int c = 1; c < 0x80; c++) {
		char plain[] = { 'x', (char)c, 'y', '\0' };
		g_autofree char *decoded = g_strdup_printf("=?UTF-8?Q?x?=%cy", c);
		g_autofree char *slug = names_subject_slug(plain);
		g_autofree char *slug2 = names_subject_slug(decoded);
		char want[4] = "x";

		if (g_unichar_isspace((gunichar)c))
			strcat(want, "_");
		else if (g_unichar_isalpha((gunichar)c) || g_unichar_isdigit((gunichar)c) ||
			 strchr(".-_+,@=", c))
			want[1] = (char)c;
		strcat(want, "y");
		if (strcmp(slug, want) != 0)
			g_error("byte 0x%02x: got '%s', want '%s'", c, slug, want);
		if (c != '=' && c != '?' && strcmp(slug2, want) != 0)
			g_error("byte 0x%02x after an encoded word: got '%s', want '%s'", c,
				slug2, want);
	}
}

static void test_message_name(void)
{
	char *name;

	name = names_message_name(7, NULL);
	g_assert_cmpstr(name, ==, "7.eml");
	g_free(name);
	name = names_message_name(7, "");
	g_assert_cmpstr(name, ==, "7.eml");
	g_free(name);

	g_test_expect_message(NULL, G_LOG_LEVEL_CRITICAL, "*uid != 0*");
	g_assert_null(names_message_name(0, "x"));
	g_test_assert_expected_messages();
	g_test_expect_message(NULL, G_LOG_LEVEL_CRITICAL, "*");
	g_assert_null(names_message_name(1, "a/b"));
	g_test_assert_expected_messages();
}

static void test_parse_uid(void)
{
	static const struct {
		const char *name;
		gboolean ok;
		guint32 uid;
	} cases[] = {
		{ "4711.eml", TRUE, 4711 },
		{ "4711-x.eml", TRUE, 4711 },
		{ "4711-.eml", TRUE, 4711 },
		{ "4711-a-b.c.eml", TRUE, 4711 },
		{ "1.eml", TRUE, 1 },
		{ "4294967295.eml", TRUE, 4294967295u },
		{ "4294967295-x.eml", TRUE, 4294967295u },
		{ "4294967296.eml", FALSE, 0 },
		{ "99999999999999999999999999.eml", FALSE, 0 },
		{ "0.eml", FALSE, 0 },
		{ "04711.eml", FALSE, 0 },
		{ ".eml", FALSE, 0 },
		{ "-1.eml", FALSE, 0 },
		{ "+1.eml", FALSE, 0 },
		{ " 1.eml", FALSE, 0 },
		{ "4711", FALSE, 0 },
		{ "4711.EML", FALSE, 0 },
		{ "4711x.eml", FALSE, 0 },
		{ "4711-x", FALSE, 0 },
		{ "4711-eml", FALSE, 0 },
		{ "4711.emlx", FALSE, 0 },
		{ "4711.eml-", FALSE, 0 },
		{ "4711-x.eml.bak", FALSE, 0 },
		{ "%34711.eml", FALSE, 0 },
		{ "", FALSE, 0 },
		{ NULL, FALSE, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint32 uid = 0;

		if (names_parse_uid(cases[i].name, &uid) != cases[i].ok)
			g_error("'%s': want %s", cases[i].name, cases[i].ok ? "ok" : "failure");
		if (cases[i].ok)
			g_assert_cmpuint(uid, ==, cases[i].uid);
	}
}

/* raw bytes (with length, may hold NUL) <-> path component */
static const struct {
	const char *raw;
	size_t len;
	const char *escaped;
} escape_vectors[] = {
#define V(r, e) { r, sizeof(r) - 1, e }
	V("", "%"),
	V(".", "%2E"),
	V("..", "%2E."),
	V("...", "%2E.."),
	V(".hidden", "%2Ehidden"),
	V("a.b", "a.b"),
	V("a.", "a."),
	V("%", "%25"),
	V("%25", "%2525"),
	V("100%", "100%25"),
	V("a/b", "a%2Fb"),
	V("/", "%2F"),
	V("\n", "%0A"),
	V("a\tb\r", "a%09b%0D"),
	V("a\0b", "a%00b"),
	V("\x1b[31m", "%1B[31m"),
	V("\x7f", "%7F"),
	V("\xc2\x85", "%C2%85"),
	V("\xc2\x9b" "1m", "%C2%9B1m"),
	V("\xc2\xa0", "\xc2\xa0"),
	V(" ", " "),
	V("-", "-"),
	V("INBOX", "INBOX"),
	V("[Gmail]", "[Gmail]"),
	V("Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe"),
	V("\xd0\x9e\xd1\x82", "\xd0\x9e\xd1\x82"),
	V("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"),
	/* not UTF-8: each stray byte escaped */
	V("Entw\xfcrfe", "Entw%FCrfe"),
	V("\xc3", "%C3"),
	V("\xc3(", "%C3("),
	V("\xc0\xaf", "%C0%AF"),
	V("\xe0\x80\xaf", "%E0%80%AF"),
	V("\xed\xa0\x80", "%ED%A0%80"),
	V("\xf4\x90\x80\x80", "%F4%90%80%80"),
	V("\xf8\x88\x80\x80\x80", "%F8%88%80%80%80"),
	V("\xff\xfe", "%FF%FE"),
	V("\xe2\x82", "%E2%82"),
	/* would look like a message file */
	V("4711-x.eml", "%34711-x.eml"),
	V("4711.eml", "%34711.eml"),
	V("0.eml", "%30.eml"),
	V("007-.eml", "%3007-.eml"),
	V("9-a.b.eml", "%39-a.b.eml"),
	V("4711-a%b.eml", "%34711-a%25b.eml"),
	V("4711-a/b.eml", "%34711-a%2Fb.eml"),
	V(".4711.eml", "%2E4711.eml"),
	V("4711-x.EML", "4711-x.EML"),
	V("4711x.eml", "4711x.eml"),
	V("4711-x.eml.bak", "4711-x.eml.bak"),
	V("x4711.eml", "x4711.eml"),
	V("4711", "4711"),
	V("4711-eml", "4711-eml"),
	V("000000016b082964", "000000016b082964"),
#undef V
};

static void check_component(const char *c)
{
	g_assert_cmpstr(c, !=, "");
	g_assert_cmpstr(c, !=, ".");
	g_assert_cmpstr(c, !=, "..");
	g_assert_null(strchr(c, '/'));
	g_assert_true(g_utf8_validate(c, -1, NULL));
	g_assert_false(names_parse_uid(c, NULL));
}

static void test_escape_vectors(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(escape_vectors); i++) {
		GError *err = NULL;
		g_autofree char *esc = names_escape(escape_vectors[i].raw, escape_vectors[i].len);
		g_autofree char *back = NULL;
		size_t len = 0;

		if (strcmp(esc, escape_vectors[i].escaped) != 0)
			g_error("vector %zu: got '%s', want '%s'", i, esc,
				escape_vectors[i].escaped);
		check_component(esc);
		back = names_unescape(esc, &len, &err);
		g_assert_no_error(err);
		g_assert_cmpmem(back, len, escape_vectors[i].raw, escape_vectors[i].len);
		g_assert_cmpint(back[len], ==, '\0');
	}
	/* NULL with length 0 is the empty string */
	g_autofree char *empty = names_escape(NULL, 0);
	g_assert_cmpstr(empty, ==, "%");
}

static void test_unescape_invalid(void)
{
	static const char *const bad[] = {
		"",
		"%%",
		"%4",
		"a%",
		"%zz",
		"%g0",
		"%2e",         /* lower case */
		"%c3%bc",
		"%41",         /* 'A' needs no escape */
		"a%2E",        /* only a leading '.' is escaped */
		"%C3%BC",      /* valid UTF-8 is never escaped */
		"%C2%A0",
		"%2E%2E",      /* escape("..") is "%2E." */
		".",
		"..",
		".x",
		"a/b",
		"a\nb",
		"a\x7f",
		"\xc2\x85",    /* raw C1 control */
		"Entw\xfcrfe", /* raw invalid UTF-8 */
		"4711.eml",    /* a message name is never a folder */
		"4711-x.eml",
		"%34711x.eml", /* escaped although it need not be */
		"%3x",
		"%25%",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *err = NULL;
		size_t len = 99;
		char *got = names_unescape(bad[i], &len, &err);

		if (got)
			g_error("'%s' unescaped, expected an error", bad[i]);
		g_assert_error(err, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE);
		g_clear_error(&err);
	}
}

/* escape/unescape over random byte strings weighted towards the special bytes */
static void test_escape_random(void)
{
	static const char alphabet[] = "%./-0123456789eml\0\n\x7f\xc2\x85\xc3\xbc\xed\xa0\xff a";

	for (int round = 0; round < 20000; round++) {
		char buf[16];
		size_t len = (size_t)g_test_rand_int_range(0, sizeof(buf));
		g_autofree char *esc = NULL;
		g_autofree char *back = NULL;
		g_autofree char *again = NULL;
		size_t back_len = 0;

		for (size_t i = 0; i < len; i++) {
			if (g_test_rand_bit())
				buf[i] = alphabet[g_test_rand_int_range(0, sizeof(alphabet) - 1)];
			else
				buf[i] = (char)g_test_rand_int_range(0, 256);
		}
		if (len >= 4 && g_test_rand_bit())
			memcpy(buf + len - 4, ".eml", 4);
		esc = names_escape(buf, len);
		check_component(esc);
		back = names_unescape(esc, &back_len, NULL);
		g_assert_nonnull(back);
		g_assert_cmpmem(back, back_len, buf, len);
		/* and the other way: a component unescapes only if it is canonical */
		buf[len] = '\0';
		if (len > 0 && !memchr(buf, '\0', len)) {
			g_autofree char *raw = names_unescape(buf, &back_len, NULL);

			if (raw) {
				again = names_escape(raw, back_len);
				g_assert_cmpstr(again, ==, buf);
			}
		}
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/names/subject-vectors", test_subject_vectors);
	g_test_add_func("/names/ascii-classes", test_ascii_follows_unicode_classes);
	g_test_add_func("/names/message-name", test_message_name);
	g_test_add_func("/names/parse-uid", test_parse_uid);
	g_test_add_func("/names/escape-vectors", test_escape_vectors);
	g_test_add_func("/names/unescape-invalid", test_unescape_invalid);
	g_test_add_func("/names/escape-random", test_escape_random);
	return g_test_run();
}
