/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * errmap: the one table from a server's answer to an errno and a retry class.
 *
 * Every IMAP tagged response (and POP3 -ERR) that fails a filesystem operation
 * goes through here, so `mkdir` of an existing folder is EEXIST whichever
 * command found out. Where one operation must differ (Gmail answers a FETCH
 * over its daily download limit with [OVERQUOTA], which is not "disk full"
 * for a reader), the caller overrides beside the call and says why.
 *
 * The retry class tells the connection layer what to do before the errno
 * reaches a user:
 *   FINAL      the answer will not change by asking again: report it.
 *   TEMPORARY  the server or link is briefly unable: retry soon (reconnect,
 *              short backoff), report the errno only when retries run out.
 *   WAIT       the server asks us to slow down: back off for long (pause
 *              prefetch, shrink the pool), then retry.
 *
 * IMAP (response code atoms compared case-insensitively, RFC 5530 and others):
 *
 *   status  code                                   errno        retry
 *   OK      any                                    0            FINAL
 *   BAD     any                                    EINVAL       FINAL
 *   NO      ALREADYEXISTS                          EEXIST       FINAL
 *   NO      NONEXISTENT, TRYCREATE                 ENOENT       FINAL
 *   NO      HASCHILDREN                            ENOTEMPTY    FINAL
 *   NO      OVERQUOTA                              EDQUOT       FINAL
 *   NO      NOPERM                                 EACCES       FINAL
 *   NO      AUTHENTICATIONFAILED, AUTHORIZATIONFAILED,
 *           EXPIRED, PRIVACYREQUIRED, CONTACTADMIN EACCES       FINAL
 *   NO      CANNOT                                 EPERM        FINAL
 *   NO      READ-ONLY                              EROFS        FINAL
 *   NO      TOOBIG                                 EFBIG        FINAL
 *   NO      LIMIT                                  ENOSPC       WAIT
 *   NO      INUSE                                  EBUSY        TEMPORARY
 *   NO      EXPUNGEISSUED                          ESTALE       FINAL
 *   NO      UNAVAILABLE                            EAGAIN       TEMPORARY
 *   NO      THROTTLED                              EAGAIN       WAIT
 *   NO      SERVERBUG, CORRUPTION, NOTSAVED,
 *           UNKNOWN-CTE                            EIO          FINAL
 *   NO      CLIENTBUG, BADCHARSET, PARSE, BADURL,
 *           BADCOMPARATOR, COMPRESSIONACTIVE       EINVAL       FINAL
 *   NO      USEATTR                                EOPNOTSUPP   FINAL
 *   NO      none or any other                      EIO          FINAL
 *   BYE     a code from the NO rows                as for NO
 *   BYE     none or any other                      EIO          TEMPORARY
 *
 * LIMIT is WAIT because its common case is "too many connections" at login
 * (the pool shrinks and waits for a session: account/pool.h); an operation that still meets it
 * after waiting reports ENOSPC.
 *
 * POP3 (RFC 2449 / RFC 3206 codes, hierarchical: "SYS/TEMP/X" falls back to
 * "SYS/TEMP", then "SYS"):
 *
 *   code        errno   retry
 *   IN-USE      EBUSY   TEMPORARY
 *   LOGIN-DELAY EAGAIN  WAIT
 *   SYS/TEMP    EAGAIN  TEMPORARY
 *   SYS/PERM    EIO     FINAL
 *   SYS         EIO     FINAL
 *   AUTH        EACCES  FINAL
 *   none/other  EIO     FINAL
 *
 * The errno returned is positive (EEXIST, not -EEXIST); filesystem callers
 * negate it. Pure functions, any thread.
 */
#ifndef MFS_ERRMAP_H
#define MFS_ERRMAP_H

#include <glib.h>

enum errmap_imap_status {
	ERRMAP_IMAP_OK,
	ERRMAP_IMAP_NO,
	ERRMAP_IMAP_BAD,
	ERRMAP_IMAP_BYE,
};

enum errmap_retry {
	ERRMAP_RETRY_FINAL,
	ERRMAP_RETRY_TEMPORARY,
	ERRMAP_RETRY_WAIT,
};

/*
 * "OK", "NO", "BAD", "BYE" (any case) -> *out; FALSE for anything else
 * (PREAUTH is a greeting, not a command result).
 */
gboolean errmap_imap_status_parse(const char *word, enum errmap_imap_status *out);

/*
 * errno for an IMAP response with status and response code (NULL when none).
 * code is the code's atom ("NONEXISTENT"); brackets and arguments after it
 * ("[BADCHARSET (UTF-8)]") are tolerated and ignored. *retry (may be NULL)
 * gets the retry class.
 */
int errmap_imap(enum errmap_imap_status status, const char *code, enum errmap_retry *retry);

/* errno for a POP3 -ERR answer with response code (NULL when none), as errmap_imap(). */
int errmap_pop3(const char *code, enum errmap_retry *retry);

/* "final", "temporary", "wait": for log lines. */
const char *errmap_retry_name(enum errmap_retry retry);

#endif
