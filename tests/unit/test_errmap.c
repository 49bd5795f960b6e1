/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/errmap.h"

#include <errno.h>

#define FINAL ERRMAP_RETRY_FINAL
#define TEMP ERRMAP_RETRY_TEMPORARY
#define WAIT ERRMAP_RETRY_WAIT

static void test_imap_table(void)
{
	static const struct {
		enum errmap_imap_status status;
		const char *code;
		int err;
		enum errmap_retry retry;
	} cases[] = {
		{ ERRMAP_IMAP_OK, NULL, 0, FINAL },
		{ ERRMAP_IMAP_OK, "READ-ONLY", 0, FINAL },
		{ ERRMAP_IMAP_OK, "NONEXISTENT", 0, FINAL },
		{ ERRMAP_IMAP_BAD, NULL, EINVAL, FINAL },
		{ ERRMAP_IMAP_BAD, "NONEXISTENT", EINVAL, FINAL },
		{ ERRMAP_IMAP_BAD, "THROTTLED", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, NULL, EIO, FINAL },
		{ ERRMAP_IMAP_NO, "", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "ALERT", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "XYZZY", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "ALREADYEXISTS", EEXIST, FINAL },
		{ ERRMAP_IMAP_NO, "NONEXISTENT", ENOENT, FINAL },
		{ ERRMAP_IMAP_NO, "TRYCREATE", ENOENT, FINAL },
		{ ERRMAP_IMAP_NO, "HASCHILDREN", ENOTEMPTY, FINAL },
		{ ERRMAP_IMAP_NO, "OVERQUOTA", EDQUOT, FINAL },
		{ ERRMAP_IMAP_NO, "NOPERM", EACCES, FINAL },
		{ ERRMAP_IMAP_NO, "AUTHENTICATIONFAILED", EACCES, FINAL },
		{ ERRMAP_IMAP_NO, "AUTHORIZATIONFAILED", EACCES, FINAL },
		{ ERRMAP_IMAP_NO, "EXPIRED", EACCES, FINAL },
		{ ERRMAP_IMAP_NO, "PRIVACYREQUIRED", EACCES, FINAL },
		{ ERRMAP_IMAP_NO, "CONTACTADMIN", EACCES, FINAL },
		{ ERRMAP_IMAP_NO, "CANNOT", EPERM, FINAL },
		{ ERRMAP_IMAP_NO, "READ-ONLY", EROFS, FINAL },
		{ ERRMAP_IMAP_NO, "TOOBIG", EFBIG, FINAL },
		{ ERRMAP_IMAP_NO, "LIMIT", ENOSPC, WAIT },
		{ ERRMAP_IMAP_NO, "INUSE", EBUSY, TEMP },
		{ ERRMAP_IMAP_NO, "EXPUNGEISSUED", ESTALE, FINAL },
		{ ERRMAP_IMAP_NO, "UNAVAILABLE", EAGAIN, TEMP },
		{ ERRMAP_IMAP_NO, "THROTTLED", EAGAIN, WAIT },
		{ ERRMAP_IMAP_NO, "SERVERBUG", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "CORRUPTION", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "NOTSAVED", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "UNKNOWN-CTE", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "CLIENTBUG", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "BADCHARSET", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "PARSE", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "BADURL", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "BADCOMPARATOR", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "COMPRESSIONACTIVE", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "USEATTR", EOPNOTSUPP, FINAL },
		/* atoms are case-insensitive; brackets and arguments are tolerated */
		{ ERRMAP_IMAP_NO, "nonexistent", ENOENT, FINAL },
		{ ERRMAP_IMAP_NO, "[NONEXISTENT]", ENOENT, FINAL },
		{ ERRMAP_IMAP_NO, "BADCHARSET (UTF-8 US-ASCII)", EINVAL, FINAL },
		{ ERRMAP_IMAP_NO, "[BADCHARSET (UTF-8)]", EINVAL, FINAL },
		/* prefixes and extensions of known codes are other codes */
		{ ERRMAP_IMAP_NO, "NONEXISTENTX", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "NONEXIST", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "READ-WRITE", EIO, FINAL },
		{ ERRMAP_IMAP_NO, "[", EIO, FINAL },
		/* BYE: a known code as for NO, else a lost connection */
		{ ERRMAP_IMAP_BYE, NULL, EIO, TEMP },
		{ ERRMAP_IMAP_BYE, "ALERT", EIO, TEMP },
		{ ERRMAP_IMAP_BYE, "UNAVAILABLE", EAGAIN, TEMP },
		{ ERRMAP_IMAP_BYE, "AUTHENTICATIONFAILED", EACCES, FINAL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		enum errmap_retry retry = (enum errmap_retry)-1;
		int err = errmap_imap(cases[i].status, cases[i].code, &retry);

		if (err != cases[i].err || retry != cases[i].retry)
			g_error("case %zu (%d, %s): got %d/%s, want %d/%s", i, cases[i].status,
				cases[i].code ? cases[i].code : "NULL", err,
				errmap_retry_name(retry), cases[i].err,
				errmap_retry_name(cases[i].retry));
		/* the retry class is optional */
		g_assert_cmpint(errmap_imap(cases[i].status, cases[i].code, NULL), ==, err);
	}
}

static void test_pop3_table(void)
{
	static const struct {
		const char *code;
		int err;
		enum errmap_retry retry;
	} cases[] = {
		{ NULL, EIO, FINAL },
		{ "", EIO, FINAL },
		{ "IN-USE", EBUSY, TEMP },
		{ "LOGIN-DELAY", EAGAIN, WAIT },
		{ "SYS/TEMP", EAGAIN, TEMP },
		{ "SYS/PERM", EIO, FINAL },
		{ "SYS", EIO, FINAL },
		{ "AUTH", EACCES, FINAL },
		{ "auth", EACCES, FINAL },
		{ "[IN-USE]", EBUSY, TEMP },
		/* unknown detail levels fall back to the parent */
		{ "SYS/TEMP/DISK", EAGAIN, TEMP },
		{ "SYS/OTHER", EIO, FINAL },
		{ "AUTH/LOCKED", EACCES, FINAL },
		{ "IN-USE/X/Y", EBUSY, TEMP },
		{ "XYZZY", EIO, FINAL },
		{ "XYZZY/SYS", EIO, FINAL },
		{ "/", EIO, FINAL },
		{ "SYSTEM", EIO, FINAL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		enum errmap_retry retry = (enum errmap_retry)-1;
		int err = errmap_pop3(cases[i].code, &retry);

		if (err != cases[i].err || retry != cases[i].retry)
			g_error("case %zu (%s): got %d/%s, want %d/%s", i,
				cases[i].code ? cases[i].code : "NULL", err,
				errmap_retry_name(retry), cases[i].err,
				errmap_retry_name(cases[i].retry));
	}
}

static void test_status_parse(void)
{
	static const struct {
		const char *word;
		gboolean ok;
		enum errmap_imap_status status;
	} cases[] = {
		{ "OK", TRUE, ERRMAP_IMAP_OK },   { "ok", TRUE, ERRMAP_IMAP_OK },
		{ "NO", TRUE, ERRMAP_IMAP_NO },   { "Bad", TRUE, ERRMAP_IMAP_BAD },
		{ "BYE", TRUE, ERRMAP_IMAP_BYE }, { "PREAUTH", FALSE, 0 },
		{ "", FALSE, 0 },                 { "NOPE", FALSE, 0 },
		{ "O", FALSE, 0 },                { NULL, FALSE, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		enum errmap_imap_status st = (enum errmap_imap_status)-1;

		g_assert_cmpint(errmap_imap_status_parse(cases[i].word, &st), ==, cases[i].ok);
		if (cases[i].ok)
			g_assert_cmpint(st, ==, cases[i].status);
	}
	g_assert_cmpstr(errmap_retry_name(ERRMAP_RETRY_FINAL), ==, "final");
	g_assert_cmpstr(errmap_retry_name(ERRMAP_RETRY_TEMPORARY), ==, "temporary");
	g_assert_cmpstr(errmap_retry_name(ERRMAP_RETRY_WAIT), ==, "wait");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/errmap/imap", test_imap_table);
	g_test_add_func("/errmap/pop3", test_pop3_table);
	g_test_add_func("/errmap/status", test_status_parse);
	return g_test_run();
}
