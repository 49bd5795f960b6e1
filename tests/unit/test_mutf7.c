/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/mutf7.h"

#include <string.h>

/* UTF-8 <-> wire, both directions. */
static const struct {
	const char *utf8;
	const char *wire;
} pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "[Gmail]/Gesendet", "[Gmail]/Gesendet" },
	{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
	{ "Gel\xc3\xb6schte Elemente", "Gel&APY-schte Elemente" },
	{ "\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbd\xd1"
	  "\x8b\xd0\xb5",
	  "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-" },
	{ "a&b", "a&-b" },
	{ "&", "&-" },
	{ "&&", "&-&-" },
	{ "&\xc3\xa4&", "&-&AOQ-&-" },
	{ "\xc3\xa9&\xc3\xbc", "&AOk-&-&APw-" },
	/* RFC 3501 §5.1.3's own example */
	{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },
	/* padding: 1, 2 and 3 UTF-16 units leave 4, 2 and 0 zero bits */
	{ "\xc3\xa4", "&AOQ-" },
	{ "\xc3\xa4\xc3\xb6", "&AOQA9g-" },
	{ "\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-" },
	/* surrogate pairs */
	{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
	{ "Mail \xf0\x9f\x98\x80 box", "Mail &2D3eAA- box" },
	{ "\xf0\x9d\x84\x9ex", "&2DTdHg-x" },
	/* controls are not printable ASCII: they are encoded */
	{ "\t", "&AAk-" },
	{ "\x7f", "&AH8-" },
	{ "\xe2\x82\xac", "&IKw-" },
	{ "\xef\xac\x80", "&+wA-" },
	{ "\xc3\xa4" "a\xc3\xa4", "&AOQ-a&AOQ-" },
};

static void test_pairs(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
		GError *err = NULL;
		g_autofree char *wire = mutf7_encode(pairs[i].utf8, &err);
		g_autofree char *utf8 = NULL;

		g_assert_no_error(err);
		g_assert_cmpstr(wire, ==, pairs[i].wire);
		utf8 = mutf7_decode(pairs[i].wire, &err);
		g_assert_no_error(err);
		g_assert_cmpstr(utf8, ==, pairs[i].utf8);
	}
}

static const char *const invalid_wire[] = {
	"&",              /* shift never opened properly */
	"a&",             /* same, at the end */
	"&AOQ",           /* shift not closed */
	"Entw&APwrfe",    /* closing '-' missing: 'r','f','e' read as BASE64, then end */
	"&AOQ-&APY-",     /* two shifts back to back */
	"&AOQ-&AOQ-",     /* same */
	"&2D0-&3gA-",     /* a pair split over two shifts */
	"&AGE-",          /* encodes 'a' */
	"&ACA-",          /* encodes ' ' */
	"&AH4-",          /* encodes '~' */
	"&AOQAYQ-",       /* 'a' after a real character in one shift */
	"&AAA-",          /* U+0000 */
	"&AOR-",          /* non-zero padding bits */
	"&AOQA-",         /* a whole extra BASE64 digit */
	"&A-",            /* 6 bits: no UTF-16 unit */
	"&AO-",           /* 12 bits */
	"&2D0-",          /* lone high surrogate */
	"&3gA-",          /* lone low surrogate */
	"&2D0A5A-",       /* high surrogate followed by a non-surrogate */
	"&3gDYPQ-",       /* pair in the wrong order */
	"&AOTYPQ-",       /* ends on a high surrogate */
	"&AO_-",          /* '_' is not modified BASE64 */
	"&AO/-",          /* '/' belongs to plain BASE64, not modified */
	"&AO=-",          /* no '=' padding in modified BASE64 */
	"&AOQ&-",         /* '&' inside a shift */
	"&AO Q-",         /* space inside a shift */
	"Entw\xc3\xbcrfe", /* raw 8-bit */
	"a\tb",           /* raw control */
	"a\x7f",          /* raw DEL */
	"\xff",
};

static void test_invalid_wire(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(invalid_wire); i++) {
		GError *err = NULL;
		char *got = mutf7_decode(invalid_wire[i], &err);

		if (got)
			g_error("'%s' decoded to '%s', expected an error", invalid_wire[i], got);
		g_assert_error(err, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE);
		g_assert_nonnull(strstr(err->message, "offset"));
		g_clear_error(&err);
	}
}

static const char *const invalid_utf8[] = {
	"\xc3",             /* truncated */
	"a\xff",            /* never valid */
	"\xc0\xaf",         /* overlong '/' */
	"\xed\xa0\x80",     /* surrogate */
	"\xf4\x90\x80\x80", /* above U+10FFFF */
	"Entw\xfcrfe",      /* Latin-1 */
};

static void test_invalid_utf8(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(invalid_utf8); i++) {
		GError *err = NULL;

		g_assert_null(mutf7_encode(invalid_utf8[i], &err));
		g_assert_error(err, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE);
		g_clear_error(&err);
	}
}

/* Every BMP character and a sample of the astral planes survive the round trip. */
static void test_all_chars(void)
{
	for (gunichar c = 1; c < 0x110000; c += (c < 0x10000 ? 1 : 97)) {
		char buf[8] = { 0 };
		g_autofree char *wire = NULL;
		g_autofree char *back = NULL;

		if (c >= 0xd800 && c <= 0xdfff)
			continue;
		g_unichar_to_utf8(c, buf);
		wire = mutf7_encode(buf, NULL);
		g_assert_nonnull(wire);
		back = mutf7_decode(wire, NULL);
		g_assert_cmpstr(back, ==, buf);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mutf7/pairs", test_pairs);
	g_test_add_func("/mutf7/invalid-wire", test_invalid_wire);
	g_test_add_func("/mutf7/invalid-utf8", test_invalid_utf8);
	g_test_add_func("/mutf7/all-chars", test_all_chars);
	return g_test_run();
}
