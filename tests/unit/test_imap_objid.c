/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_objid: each case is one FETCH response through the real parser, and
 * the id it gives ("" for none).
 */
#include "protocol/imap_objid.h"

#include <string.h>

static void on_response(void *ud, struct imap_response *r)
{
	struct imap_response **out = ud;

	g_assert_null(*out);
	*out = r;
}

static struct imap_response *parse_one(const char *line)
{
	const struct imap_parser_callbacks cb = { .response = on_response };
	struct imap_response *r = NULL;
	struct imap_parser *p = imap_parser_new(NULL, &cb, &r);
	GError *err = NULL;
	gssize n = imap_parser_feed(p, line, strlen(line), &err);

	g_assert_no_error(err);
	g_assert_cmpint(n, ==, (gssize)strlen(line));
	g_assert_nonnull(r);
	imap_parser_free(p);
	return r;
}

static void check(const char *line, const char *want)
{
	struct imap_response *r = parse_one(line);
	char out[IMAP_OBJID_MAX];
	size_t n;

	memset(out, 'x', sizeof(out));
	n = imap_objid_from_fetch(r, out);
	g_assert_cmpstr(out, ==, want);
	g_assert_cmpuint(n, ==, strlen(want));
	imap_response_free(r);
}

static void test_emailid(void)
{
	check("* 1 FETCH (UID 5 EMAILID (M6f8c2a1b_x-Z9))\r\n", "EM6f8c2a1b_x-Z9");
	check("* 1 FETCH (EMAILID (a) UID 5)\r\n", "Ea");
	/* item names are case-insensitive */
	check("* 1 FETCH (UID 5 emailid (Mabc))\r\n", "EMabc");
}

static void test_emailid_length(void)
{
	g_autofree char *max = g_strnfill(IMAP_OBJECTID_MAXLEN, 'a');
	g_autofree char *over = g_strnfill(IMAP_OBJECTID_MAXLEN + 1, 'a');
	g_autofree char *line_max = g_strdup_printf("* 1 FETCH (UID 1 EMAILID (%s))\r\n", max);
	g_autofree char *line_over = g_strdup_printf("* 1 FETCH (UID 1 EMAILID (%s))\r\n", over);
	g_autofree char *want = g_strconcat("E", max, NULL);

	check(line_max, want);
	g_assert_cmpuint(strlen(want), ==, IMAP_OBJID_MAX - 1);
	check(line_over, "");
	check("* 1 FETCH (UID 1 EMAILID ())\r\n", "");
}

static void test_emailid_bad(void)
{
	check("* 1 FETCH (UID 1 EMAILID (M.1))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID (M+1))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID (M\xc3\xa9" "1))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID (M1 M2))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID M1)\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID (\"M1\"))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID ((M1)))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID NIL)\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID (NIL))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID {2}\r\nM1)\r\n", "");
}

static void test_missing(void)
{
	check("* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n", "");
	check("* 1 FETCH (UID 1 EMAILID)\r\n", "");
	check("* 1 FETCH ()\r\n", "");
	check("* 3 EXISTS\r\n", "");
	check("* OK [EMAILID (M1)] hi\r\n", "");
	check("A1 OK done\r\n", "");
}

static void test_gm_msgid(void)
{
	check("* 1 FETCH (UID 1 X-GM-MSGID 1278455344230334865)\r\n", "G1278455344230334865");
	check("* 1 FETCH (X-GM-MSGID 0 UID 1)\r\n", "G0");
	check("* 1 FETCH (UID 1 X-GM-MSGID 007)\r\n", "G7");
	check("* 1 FETCH (UID 1 X-GM-MSGID 18446744073709551615)\r\n", "G18446744073709551615");
	check("* 1 FETCH (UID 1 X-GM-MSGID 18446744073709551616)\r\n", "");
	check("* 1 FETCH (UID 1 X-GM-MSGID 99999999999999999999999)\r\n", "");
	check("* 1 FETCH (UID 1 X-GM-MSGID -1)\r\n", "");
	check("* 1 FETCH (UID 1 X-GM-MSGID 12a)\r\n", "");
	check("* 1 FETCH (UID 1 X-GM-MSGID \"12\")\r\n", "");
	check("* 1 FETCH (UID 1 X-GM-MSGID NIL)\r\n", "");
	check("* 1 FETCH (UID 1 X-GM-MSGID (12))\r\n", "");
}

static void test_both(void)
{
	check("* 1 FETCH (X-GM-MSGID 12 EMAILID (Mx))\r\n", "EMx");
	check("* 1 FETCH (EMAILID (Mx) X-GM-MSGID 12)\r\n", "EMx");
	/* A bad EMAILID decides too: no id of the other kind. */
	check("* 1 FETCH (EMAILID (M.x) X-GM-MSGID 12)\r\n", "");
	check("* 1 FETCH (EMAILID NIL X-GM-MSGID 12)\r\n", "");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap_objid/emailid", test_emailid);
	g_test_add_func("/imap_objid/emailid_length", test_emailid_length);
	g_test_add_func("/imap_objid/emailid_bad", test_emailid_bad);
	g_test_add_func("/imap_objid/missing", test_missing);
	g_test_add_func("/imap_objid/gm_msgid", test_gm_msgid);
	g_test_add_func("/imap_objid/both", test_both);
	return g_test_run();
}
