/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pure parts of the POP3 client: status lines, listing lines, CAPA, and
 * the multi-line reader with dot-unstuffing, fed whole, one byte at a time
 * and split at every point.
 */
#include "protocol/pop3.h"

#include <errno.h>
#include <string.h>

static void test_reply(void)
{
	static const struct {
		const char *line;
		gboolean ok;
		enum pop3_status status;
		const char *code;
		const char *text;
	} cases[] = {
		{ "+OK", TRUE, POP3_STATUS_OK, NULL, "" },
		{ "+OK dovecot ready.", TRUE, POP3_STATUS_OK, NULL, "dovecot ready." },
		{ "+ok lower case", TRUE, POP3_STATUS_OK, NULL, "lower case" },
		{ "+OK 2 320", TRUE, POP3_STATUS_OK, NULL, "2 320" },
		{ "-ERR", TRUE, POP3_STATUS_ERR, NULL, "" },
		{ "-ERR no such message", TRUE, POP3_STATUS_ERR, NULL, "no such message" },
		{ "-ERR [IN-USE] Mailbox is locked", TRUE, POP3_STATUS_ERR, "IN-USE",
		  "Mailbox is locked" },
		{ "-ERR [SYS/TEMP] try later", TRUE, POP3_STATUS_ERR, "SYS/TEMP", "try later" },
		{ "-ERR [AUTH] Authentication failed.", TRUE, POP3_STATUS_ERR, "AUTH",
		  "Authentication failed." },
		{ "-ERR [LOGIN-DELAY]", TRUE, POP3_STATUS_ERR, "LOGIN-DELAY", "" },
		/* not RFC 2449 codes: kept as text */
		{ "-ERR [two words] x", TRUE, POP3_STATUS_ERR, NULL, "[two words] x" },
		{ "-ERR [] x", TRUE, POP3_STATUS_ERR, NULL, "[] x" },
		{ "-ERR [UNCLOSED x", TRUE, POP3_STATUS_ERR, NULL, "[UNCLOSED x" },
		{ "-ERR [A\x1b]", TRUE, POP3_STATUS_ERR, NULL, "[A\x1b]" },
		{ "+OK [IN-USE] odd but fine", TRUE, POP3_STATUS_OK, "IN-USE", "odd but fine" },
		{ "+ ", TRUE, POP3_STATUS_CONT, NULL, "" },
		{ "+", TRUE, POP3_STATUS_CONT, NULL, "" },
		{ "+ eyJzdGF0dXMiOiI0MDEifQ==", TRUE, POP3_STATUS_CONT, NULL,
		  "eyJzdGF0dXMiOiI0MDEifQ==" },
		{ "+OKAY", FALSE, 0, NULL, NULL },
		{ "-ERROR", FALSE, 0, NULL, NULL },
		{ "+x", FALSE, 0, NULL, NULL },
		{ "OK", FALSE, 0, NULL, NULL },
		{ "", FALSE, 0, NULL, NULL },
		{ "* OK IMAP", FALSE, 0, NULL, NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct pop3_reply r;
		gboolean ok = pop3_parse_reply(cases[i].line, strlen(cases[i].line), &r);

		g_test_message("%s", cases[i].line);
		g_assert_cmpint(ok, ==, cases[i].ok);
		if (!ok)
			continue;
		g_assert_cmpint(r.status, ==, cases[i].status);
		g_assert_cmpstr(r.code, ==, cases[i].code);
		g_assert_cmpstr(r.text, ==, cases[i].text);
		pop3_reply_clear(&r);
	}
}

static void test_uidl_line(void)
{
	g_autofree char *u70 = g_strnfill(70, 'a');
	g_autofree char *u71 = g_strnfill(71, 'a');
	g_autofree char *l70 = g_strdup_printf("1 %s", u70);
	g_autofree char *l71 = g_strdup_printf("1 %s", u71);
	const struct {
		const char *line;
		size_t len; /* 0: strlen */
		gboolean ok;
		guint32 num;
		const char *uidl;
	} cases[] = {
		{ "1 000000016b082964", 0, TRUE, 1, "000000016b082964" },
		{ "4294967295 x", 0, TRUE, G_MAXUINT32, "x" },
		{ "2 ../../etc/passwd", 0, TRUE, 2, "../../etc/passwd" },
		{ "3 a/b", 0, TRUE, 3, "a/b" },
		{ "3  spaced", 0, TRUE, 3, "spaced" },
		{ "3 trailing  ", 0, TRUE, 3, "trailing" },
		{ "5 !~", 0, TRUE, 5, "!~" },
		{ l70, 0, TRUE, 1, u70 },
		{ l71, 0, FALSE, 0, NULL },
		{ "0 zero", 0, FALSE, 0, NULL },
		{ "4294967296 x", 0, FALSE, 0, NULL },
		{ "99999999999999999999999 x", 0, FALSE, 0, NULL },
		{ "1", 0, FALSE, 0, NULL },
		{ "1 ", 0, FALSE, 0, NULL },
		{ "1 two words", 0, FALSE, 0, NULL },
		{ "1 ctl\x01", 0, FALSE, 0, NULL },
		{ "1 del\x7f", 0, FALSE, 0, NULL },
		{ "1 \xc3\xa4", 0, FALSE, 0, NULL },
		{ "1 nul\0x", 7, FALSE, 0, NULL },
		{ "-1 x", 0, FALSE, 0, NULL },
		{ "x 1", 0, FALSE, 0, NULL },
		{ "1x y", 0, FALSE, 0, NULL },
		{ "", 0, FALSE, 0, NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint32 num = 0;
		char *uidl = NULL;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].line);
		gboolean ok = pop3_parse_uidl_line(cases[i].line, len, &num, &uidl);

		g_test_message("%zu: %s", i, cases[i].line);
		g_assert_cmpint(ok, ==, cases[i].ok);
		if (ok) {
			g_assert_cmpuint(num, ==, cases[i].num);
			g_assert_cmpstr(uidl, ==, cases[i].uidl);
		}
		g_free(uidl);
	}
	g_assert_false(pop3_uidl_valid("", 0));
	g_assert_true(pop3_uidl_valid("!", 1));
}

static void test_list_line(void)
{
	static const struct {
		const char *line;
		gboolean ok;
		guint32 num;
		guint64 size;
	} cases[] = {
		{ "1 120", TRUE, 1, 120 },
		{ "1 0", TRUE, 1, 0 },
		{ "7 120 more info", TRUE, 7, 120 },
		{ "7  120", TRUE, 7, 120 },
		{ "2 18446744073709551615", TRUE, 2, G_MAXUINT64 },
		{ "2 18446744073709551616", FALSE, 0, 0 },
		{ "2 99999999999999999999999", FALSE, 0, 0 },
		{ "0 12", FALSE, 0, 0 },
		{ "1 -3", FALSE, 0, 0 },
		{ "1 12x", FALSE, 0, 0 },
		{ "1", FALSE, 0, 0 },
		{ "1 ", FALSE, 0, 0 },
		{ "x 1", FALSE, 0, 0 },
		{ "", FALSE, 0, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint32 num = 0;
		guint64 size = 0;
		gboolean ok = pop3_parse_list_line(cases[i].line, strlen(cases[i].line), &num, &size);

		g_test_message("%s", cases[i].line);
		g_assert_cmpint(ok, ==, cases[i].ok);
		if (ok) {
			g_assert_cmpuint(num, ==, cases[i].num);
			g_assert_cmpuint(size, ==, cases[i].size);
		}
	}
}

static void test_stat(void)
{
	static const struct {
		const char *text;
		gboolean ok;
		guint32 count;
		guint64 octets;
	} cases[] = {
		{ "2 320", TRUE, 2, 320 },
		{ "0 0", TRUE, 0, 0 },
		{ "3 7329865 extra", TRUE, 3, 7329865 },
		{ "4294967296 1", FALSE, 0, 0 },
		{ "1 18446744073709551616", FALSE, 0, 0 },
		{ "2", FALSE, 0, 0 },
		{ "", FALSE, 0, 0 },
		{ "a b", FALSE, 0, 0 },
		{ "2 3x", FALSE, 0, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint32 count = 0;
		guint64 octets = 0;

		g_assert_cmpint(pop3_parse_stat(cases[i].text, &count, &octets), ==, cases[i].ok);
		if (cases[i].ok) {
			g_assert_cmpuint(count, ==, cases[i].count);
			g_assert_cmpuint(octets, ==, cases[i].octets);
		}
	}
}

static void test_cap_line(void)
{
	static const struct {
		const char *line;
		guint32 bits;
	} cases[] = {
		{ "TOP", POP3_CAP_TOP },
		{ "UIDL", POP3_CAP_UIDL },
		{ "uidl", POP3_CAP_UIDL },
		{ "USER", POP3_CAP_USER },
		{ "STLS", POP3_CAP_STLS },
		{ "PIPELINING", POP3_CAP_PIPELINING },
		{ "RESP-CODES", POP3_CAP_RESP_CODES },
		{ "AUTH-RESP-CODE", POP3_CAP_AUTH_RESP_CODE },
		{ "LOGIN-DELAY 900", POP3_CAP_LOGIN_DELAY },
		{ "SASL PLAIN LOGIN", POP3_CAP_SASL_PLAIN | POP3_CAP_SASL_LOGIN },
		{ "SASL XOAUTH2 OAUTHBEARER",
		  POP3_CAP_SASL_XOAUTH2 | POP3_CAP_SASL_OAUTHBEARER },
		{ "SASL", 0 },
		{ "IMPLEMENTATION Dovecot", 0 },
		{ "EXPIRE NEVER", 0 },
		{ "TOPX", 0 },
		{ "", 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmphex(pop3_cap_line(cases[i].line), ==, cases[i].bits);
}

static void test_cap_login_delay(void)
{
	static const struct {
		const char *line;
		guint seconds;
	} cases[] = {
		{ "LOGIN-DELAY 900", 900 },
		{ "login-delay 60", 60 },
		{ "LOGIN-DELAY 300 USER", 300 }, /* the value may differ per user */
		{ "LOGIN-DELAY 0", 0 },
		{ "LOGIN-DELAY 86400", POP3_LOGIN_DELAY_MAX },
		{ "LOGIN-DELAY 86401", POP3_LOGIN_DELAY_MAX },
		{ "LOGIN-DELAY 4294967295", POP3_LOGIN_DELAY_MAX },
		{ "LOGIN-DELAY 4294967296", 0 }, /* over 32 bits: malformed */
		{ "LOGIN-DELAY 99999999999999999999999", 0 },
		{ "LOGIN-DELAY", 0 },
		{ "LOGIN-DELAY ", 0 },
		{ "LOGIN-DELAY -5", 0 },
		{ "LOGIN-DELAY 5x", 0 },
		{ "LOGIN-DELAYS 5", 0 },
		{ "EXPIRE 5", 0 },
		{ "", 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmpuint(pop3_cap_login_delay(cases[i].line), ==, cases[i].seconds);
}

/* -- the multi-line reader ------------------------------------------------- */

static int collect(void *ud, const void *data, size_t len)
{
	g_byte_array_append(ud, data, (guint)len);
	return 0;
}

struct dot_case {
	const char *wire;
	const char *out;
	size_t consumed; /* 0: all of wire */
	gboolean done;
};

static const struct dot_case dot_cases[] = {
	{ ".\r\n", "", 0, TRUE },
	{ "a\r\n.\r\n", "a\r\n", 0, TRUE },
	{ "..\r\n.\r\n", ".\r\n", 0, TRUE },
	{ "...\r\n.\r\n", "..\r\n", 0, TRUE },
	{ "..hidden\r\n.\r\n", ".hidden\r\n", 0, TRUE },
	/* RFC 1939 §3: an unstuffed dot line loses its dot all the same */
	{ ".hidden\r\n.\r\n", "hidden\r\n", 0, TRUE },
	{ ". \r\n.\r\n", " \r\n", 0, TRUE },
	{ "end.\r\n.\r\n", "end.\r\n", 0, TRUE },
	{ "a.b\r\n..\r\n.\r\n", "a.b\r\n.\r\n", 0, TRUE },
	/* the corpus's dotted body, stuffed as dovecot sends it */
	{ "..\r\n...\r\n..hidden line\r\n.. \r\nend.\r\n.\r\n",
	  ".\r\n..\r\n.hidden line\r\n. \r\nend.\r\n", 0, TRUE },
	/* the next answer stays unread */
	{ "x\r\n.\r\n+OK next\r\n", "x\r\n", 6, TRUE },
	{ ".\r\n.\r\n", "", 3, TRUE },
	/* a CR after a dot that is not the terminator is data */
	{ ".\rx\r\n.\r\n", "\rx\r\n", 0, TRUE },
	{ ".\r.\r\n.\r\n", "\r.\r\n", 0, TRUE },
	/* bare LF lines pass through; "." LF ends too */
	{ "a\nb\n.\n", "a\nb\n", 0, TRUE },
	{ "a\r\n.\nrest", "a\r\n", 5, TRUE },
	/* a dot not at a line start is data */
	{ "a\r\nb.\r\n.c\r\n.\r\n", "a\r\nb.\r\nc\r\n", 0, TRUE },
	/* unfinished */
	{ "", "", 0, FALSE },
	{ "abc\r\n", "abc\r\n", 0, FALSE },
	{ "abc\r\n.", "abc\r\n", 0, FALSE },
	{ "abc\r\n.\r", "abc\r\n", 0, FALSE },
	{ "abc\r\n..", "abc\r\n.", 0, FALSE },
	{ "abc", "abc", 0, FALSE },
};

static void check_dot(const struct dot_case *c, GByteArray *out, size_t consumed,
		      const struct pop3_dot_reader *d)
{
	size_t want = c->consumed ? c->consumed : strlen(c->wire);

	g_assert_cmpuint(consumed, ==, want);
	g_assert_cmpint(d->done, ==, c->done);
	g_assert_cmpuint(out->len, ==, strlen(c->out));
	g_assert_true(out->len == 0 || memcmp(out->data, c->out, out->len) == 0);
	g_assert_cmpuint(d->out, ==, out->len);
}

static void test_dot_whole(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(dot_cases); i++) {
		const struct dot_case *c = &dot_cases[i];
		g_autoptr(GByteArray) out = g_byte_array_new();
		struct pop3_dot_reader d;
		size_t used;

		g_test_message("%zu", i);
		pop3_dot_reader_init(&d);
		used = pop3_dot_reader_feed(&d, c->wire, strlen(c->wire), collect, out);
		check_dot(c, out, used, &d);
		/* After the end, nothing more is taken. */
		if (d.done)
			g_assert_cmpuint(pop3_dot_reader_feed(&d, "x\r\n", 3, collect, out), ==, 0);
	}
}

static void test_dot_bytewise(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(dot_cases); i++) {
		const struct dot_case *c = &dot_cases[i];
		g_autoptr(GByteArray) out = g_byte_array_new();
		struct pop3_dot_reader d;
		size_t used = 0;

		pop3_dot_reader_init(&d);
		for (size_t k = 0; k < strlen(c->wire); k++) {
			size_t n = pop3_dot_reader_feed(&d, c->wire + k, 1, collect, out);

			g_assert_cmpuint(n, <=, 1);
			used += n;
			if (n == 0)
				break;
		}
		check_dot(c, out, used, &d);
	}
}

static void test_dot_splits(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(dot_cases); i++) {
		const struct dot_case *c = &dot_cases[i];
		size_t len = strlen(c->wire);

		for (size_t cut = 0; cut <= len; cut++) {
			g_autoptr(GByteArray) out = g_byte_array_new();
			struct pop3_dot_reader d;
			size_t used;

			pop3_dot_reader_init(&d);
			used = pop3_dot_reader_feed(&d, c->wire, cut, collect, out);
			if (used == cut)
				used += pop3_dot_reader_feed(&d, c->wire + cut, len - cut, collect,
							     out);
			check_dot(c, out, used, &d);
		}
	}
}

static int refuse_after_3(void *ud, const void *data, size_t len)
{
	size_t *seen = ud;

	(void)data;
	*seen += len;
	return *seen > 3 ? -ENOSPC : 0;
}

static void test_dot_sink_error(void)
{
	struct pop3_dot_reader d;
	size_t seen = 0;

	pop3_dot_reader_init(&d);
	/* The bytes offered to the refusing sink count as consumed. */
	g_assert_cmpuint(pop3_dot_reader_feed(&d, "ab\r\n", 4, refuse_after_3, &seen), ==, 4);
	g_assert_cmpint(d.sink_rc, ==, -ENOSPC);
	g_assert_false(d.done);
	g_assert_cmpuint(pop3_dot_reader_feed(&d, ".\r\n", 3, refuse_after_3, &seen), ==, 0);
}

/* A long message in many pieces: the bytes come out exactly, however cut. */
static void test_dot_large(void)
{
	GString *msg = g_string_new(NULL), *wire = g_string_new(NULL);
	g_autoptr(GByteArray) out = g_byte_array_new();
	struct pop3_dot_reader d;
	GRand *rand = g_rand_new_with_seed(7);
	size_t pos = 0;

	for (int i = 0; i < 2000; i++) {
		int n = g_rand_int_range(rand, 0, 300);

		if (g_rand_boolean(rand))
			g_string_append_c(msg, '.');
		for (int k = 0; k < n; k++)
			g_string_append_c(msg, (char)g_rand_int_range(rand, 32, 127));
		g_string_append(msg, "\r\n");
	}
	for (size_t i = 0; i < msg->len; i++) {
		if (msg->str[i] == '.' && (i == 0 || msg->str[i - 1] == '\n'))
			g_string_append_c(wire, '.');
		g_string_append_c(wire, msg->str[i]);
	}
	g_string_append(wire, ".\r\n");
	pop3_dot_reader_init(&d);
	while (pos < wire->len) {
		size_t n = MIN((size_t)g_rand_int_range(rand, 1, 5000), wire->len - pos);

		pos += pop3_dot_reader_feed(&d, wire->str + pos, n, collect, out);
	}
	g_assert_true(d.done);
	g_assert_cmpuint(out->len, ==, msg->len);
	g_assert_true(msg->len == 0 || memcmp(out->data, msg->str, msg->len) == 0);
	g_rand_free(rand);
	g_string_free(msg, TRUE);
	g_string_free(wire, TRUE);
}

static void test_error_errno(void)
{
	static const struct {
		GQuark domain;
		int code;
		int err;
		enum errmap_retry retry;
	} cases[] = {
		{ 0, POP3_ERROR_ERR, EIO, ERRMAP_RETRY_FINAL },
		{ 0, POP3_ERROR_IN_USE, EBUSY, ERRMAP_RETRY_TEMPORARY },
		{ 0, POP3_ERROR_LOGIN_DELAY, EAGAIN, ERRMAP_RETRY_WAIT },
		{ 0, POP3_ERROR_SYS_TEMP, EAGAIN, ERRMAP_RETRY_TEMPORARY },
		{ 0, POP3_ERROR_SYS_PERM, EIO, ERRMAP_RETRY_FINAL },
		{ 0, POP3_ERROR_AUTH, EACCES, ERRMAP_RETRY_FINAL },
		{ 0, POP3_ERROR_UNSUPPORTED, EOPNOTSUPP, ERRMAP_RETRY_FINAL },
		{ 0, POP3_ERROR_PROTOCOL, EIO, ERRMAP_RETRY_TEMPORARY },
		{ 0, POP3_ERROR_QUIT_UNCONFIRMED, ENOTCONN, ERRMAP_RETRY_TEMPORARY },
		{ 1, G_IO_ERROR_CANCELLED, EINTR, ERRMAP_RETRY_FINAL },
		{ 1, G_IO_ERROR_TIMED_OUT, EIO, ERRMAP_RETRY_TEMPORARY },
		{ 2, G_TLS_ERROR_BAD_CERTIFICATE, EACCES, ERRMAP_RETRY_FINAL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		GQuark q = cases[i].domain == 0 ? POP3_ERROR :
			   cases[i].domain == 1 ? G_IO_ERROR :
						  G_TLS_ERROR;
		GError *e = g_error_new_literal(q, cases[i].code, "x");
		enum errmap_retry retry;

		g_assert_cmpint(pop3_error_errno(e, &retry), ==, cases[i].err);
		g_assert_cmpint(retry, ==, cases[i].retry);
		g_error_free(e);
	}
	g_assert_cmpint(pop3_error_errno(NULL, NULL), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/pop3/reply", test_reply);
	g_test_add_func("/pop3/uidl-line", test_uidl_line);
	g_test_add_func("/pop3/list-line", test_list_line);
	g_test_add_func("/pop3/stat", test_stat);
	g_test_add_func("/pop3/cap-line", test_cap_line);
	g_test_add_func("/pop3/cap-login-delay", test_cap_login_delay);
	g_test_add_func("/pop3/dot/whole", test_dot_whole);
	g_test_add_func("/pop3/dot/bytewise", test_dot_bytewise);
	g_test_add_func("/pop3/dot/splits", test_dot_splits);
	g_test_add_func("/pop3/dot/sink-error", test_dot_sink_error);
	g_test_add_func("/pop3/dot/large", test_dot_large);
	g_test_add_func("/pop3/error-errno", test_error_errno);
	return g_test_run();
}
