/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/errmap.h"

#include <errno.h>
#include <string.h>

struct errmap_entry {
	const char *code;
	int err;
	enum errmap_retry retry;
};

/* Keep in step with the table in errmap.h. */
static const struct errmap_entry imap_codes[] = {
	{ "ALREADYEXISTS", EEXIST, ERRMAP_RETRY_FINAL },
	{ "NONEXISTENT", ENOENT, ERRMAP_RETRY_FINAL },
	{ "TRYCREATE", ENOENT, ERRMAP_RETRY_FINAL },
	{ "HASCHILDREN", ENOTEMPTY, ERRMAP_RETRY_FINAL },
	{ "OVERQUOTA", EDQUOT, ERRMAP_RETRY_FINAL },
	{ "NOPERM", EACCES, ERRMAP_RETRY_FINAL },
	{ "AUTHENTICATIONFAILED", EACCES, ERRMAP_RETRY_FINAL },
	{ "AUTHORIZATIONFAILED", EACCES, ERRMAP_RETRY_FINAL },
	{ "EXPIRED", EACCES, ERRMAP_RETRY_FINAL },
	{ "PRIVACYREQUIRED", EACCES, ERRMAP_RETRY_FINAL },
	{ "CONTACTADMIN", EACCES, ERRMAP_RETRY_FINAL },
	{ "CANNOT", EPERM, ERRMAP_RETRY_FINAL },
	{ "READ-ONLY", EROFS, ERRMAP_RETRY_FINAL },
	{ "TOOBIG", EFBIG, ERRMAP_RETRY_FINAL },
	{ "LIMIT", ENOSPC, ERRMAP_RETRY_WAIT },
	{ "INUSE", EBUSY, ERRMAP_RETRY_TEMPORARY },
	{ "EXPUNGEISSUED", ESTALE, ERRMAP_RETRY_FINAL },
	{ "UNAVAILABLE", EAGAIN, ERRMAP_RETRY_TEMPORARY },
	{ "THROTTLED", EAGAIN, ERRMAP_RETRY_WAIT },
	{ "SERVERBUG", EIO, ERRMAP_RETRY_FINAL },
	{ "CORRUPTION", EIO, ERRMAP_RETRY_FINAL },
	{ "NOTSAVED", EIO, ERRMAP_RETRY_FINAL },
	{ "UNKNOWN-CTE", EIO, ERRMAP_RETRY_FINAL },
	{ "CLIENTBUG", EINVAL, ERRMAP_RETRY_FINAL },
	{ "BADCHARSET", EINVAL, ERRMAP_RETRY_FINAL },
	{ "PARSE", EINVAL, ERRMAP_RETRY_FINAL },
	{ "BADURL", EINVAL, ERRMAP_RETRY_FINAL },
	{ "BADCOMPARATOR", EINVAL, ERRMAP_RETRY_FINAL },
	{ "COMPRESSIONACTIVE", EINVAL, ERRMAP_RETRY_FINAL },
	{ "USEATTR", EOPNOTSUPP, ERRMAP_RETRY_FINAL },
};

static const struct errmap_entry pop3_codes[] = {
	{ "IN-USE", EBUSY, ERRMAP_RETRY_TEMPORARY },
	{ "LOGIN-DELAY", EAGAIN, ERRMAP_RETRY_WAIT },
	{ "SYS/TEMP", EAGAIN, ERRMAP_RETRY_TEMPORARY },
	{ "SYS/PERM", EIO, ERRMAP_RETRY_FINAL },
	{ "SYS", EIO, ERRMAP_RETRY_FINAL },
	{ "AUTH", EACCES, ERRMAP_RETRY_FINAL },
};

static int answer(int err, enum errmap_retry class, enum errmap_retry *retry)
{
	if (retry)
		*retry = class;
	return err;
}

/* The code's atom: "[BADCHARSET (UTF-8)]" -> "BADCHARSET", length in *len. */
static const char *code_atom(const char *code, size_t *len)
{
	if (!code)
		return NULL;
	while (*code == '[' || *code == ' ')
		code++;
	*len = strcspn(code, " ]([");
	return *len ? code : NULL;
}

static const struct errmap_entry *lookup(const struct errmap_entry *table, size_t n,
					 const char *atom, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(table[i].code) == len &&
		    g_ascii_strncasecmp(table[i].code, atom, len) == 0)
			return &table[i];
	}
	return NULL;
}

gboolean errmap_imap_status_parse(const char *word, enum errmap_imap_status *out)
{
	static const struct {
		const char *word;
		enum errmap_imap_status status;
	} words[] = {
		{ "OK", ERRMAP_IMAP_OK },
		{ "NO", ERRMAP_IMAP_NO },
		{ "BAD", ERRMAP_IMAP_BAD },
		{ "BYE", ERRMAP_IMAP_BYE },
	};

	for (size_t i = 0; word && i < G_N_ELEMENTS(words); i++) {
		if (g_ascii_strcasecmp(word, words[i].word) == 0) {
			*out = words[i].status;
			return TRUE;
		}
	}
	return FALSE;
}

int errmap_imap(enum errmap_imap_status status, const char *code, enum errmap_retry *retry)
{
	const struct errmap_entry *e = NULL;
	size_t len = 0;
	const char *atom = code_atom(code, &len);

	switch (status) {
	case ERRMAP_IMAP_OK:
		return answer(0, ERRMAP_RETRY_FINAL, retry);
	case ERRMAP_IMAP_BAD:
		/* We sent something the server could not parse: asking again won't help. */
		return answer(EINVAL, ERRMAP_RETRY_FINAL, retry);
	case ERRMAP_IMAP_NO:
	case ERRMAP_IMAP_BYE:
		break;
	}
	if (atom)
		e = lookup(imap_codes, G_N_ELEMENTS(imap_codes), atom, len);
	if (e)
		return answer(e->err, e->retry, retry);
	/* A BYE we cannot explain is a lost connection: reconnect and try again. */
	if (status == ERRMAP_IMAP_BYE)
		return answer(EIO, ERRMAP_RETRY_TEMPORARY, retry);
	return answer(EIO, ERRMAP_RETRY_FINAL, retry);
}

int errmap_pop3(const char *code, enum errmap_retry *retry)
{
	size_t len = 0;
	const char *atom = code_atom(code, &len);

	/* RFC 2449 §8: detail levels of a hierarchical code the client does not know are ignored. */
	while (atom && len) {
		const struct errmap_entry *e =
			lookup(pop3_codes, G_N_ELEMENTS(pop3_codes), atom, len);
		const char *slash;

		if (e)
			return answer(e->err, e->retry, retry);
		slash = memrchr(atom, '/', len);
		if (!slash)
			break;
		len = (size_t)(slash - atom);
	}
	return answer(EIO, ERRMAP_RETRY_FINAL, retry);
}

const char *errmap_retry_name(enum errmap_retry retry)
{
	switch (retry) {
	case ERRMAP_RETRY_FINAL:
		return "final";
	case ERRMAP_RETRY_TEMPORARY:
		return "temporary";
	case ERRMAP_RETRY_WAIT:
		return "wait";
	}
	return "?";
}
