/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * append: what a file written into an IMAP folder becomes before APPEND
 * (mailfs(1), WRITING). Pure functions, no I/O: the filesystem layer reads
 * the finished file, the IMAP client sends the result.
 *
 * Errors are G_FILE_ERROR_INVAL (g_file_error_from_errno(EINVAL)); the
 * writer sees EINVAL from close() or rename(), the message goes to the log.
 *
 * Memory: every returned string and byte array is newly allocated and owned
 * by the caller (g_free, g_byte_array_unref). Threads: any thread,
 * concurrently.
 */
#ifndef MFS_APPEND_H
#define MFS_APPEND_H

#include <glib.h>

/*
 * Prepare len bytes of a local file (data may be NULL when len is 0) for
 * APPEND:
 *   - each bare LF becomes CRLF; CRLF stays; a lone CR stays as it is;
 *   - nothing else changes: no line is dropped (a leading mbox "From " line
 *     is sent as written), no BOM stripped, no trailing CRLF added, and the
 *     first line need not be a header. The server judges the message: what
 *     it once stored and served (a backup) is put back byte for byte.
 * Refused (FALSE, G_FILE_ERROR_INVAL, nothing in *out):
 *   - an empty file;
 *   - any NUL byte (an APPEND literal may carry NUL only with BINARY,
 *     RFC 3516, which we do not use);
 *   - a result longer than G_MAXUINT bytes (GByteArray's limit).
 * On success *out holds the prepared bytes; on failure *out is set to NULL.
 * Cost: two linear passes, one allocation of the exact size.
 */
gboolean append_prepare(const guint8 *data, gsize len, GByteArray **out, GError **err);

/*
 * Parse a user.imap.flags value (len bytes, not NUL-terminated; value may be
 * NULL when len is 0). Flags are separated by runs of SP; any control
 * character (TAB, CR and LF included) is invalid; NUL bytes at the very end
 * are ignored (some tools store the C string terminator), a NUL elsewhere is
 * invalid.
 * Each flag is one of
 *   - a system flag \Seen \Answered \Flagged \Deleted \Draft, matched
 *     case-insensitively and written in that canonical case;
 *   - a keyword: an IMAP atom (RFC 3501 §9), bytes 0x21..0x7E except the
 *     atom-specials ( ) { % * " \ ] — so no leading '\'.
 * \Recent (set only by the server), \* and any other '\'-flag are refused.
 * A flag repeated (ASCII case-insensitively, as IMAP compares them) is kept
 * once, where it first appears, in its first spelling; order is kept.
 * On success *canonical is the flags joined by single spaces ("" for none),
 * ready for APPEND (...) and UID STORE FLAGS (...). On an invalid flag:
 * FALSE, G_FILE_ERROR_INVAL naming the flag, *canonical set to NULL.
 */
gboolean append_parse_flags(const char *value, gsize len, char **canonical, GError **err);

/*
 * The INTERNALDATE argument of APPEND for a time (the file's mtime), always
 * in UTC: "26-Nov-2026 14:05:09 +0000" (RFC 3501 date-time; a day below 10
 * has a leading space, " 6-Nov-2026 ..."; English month names whatever the
 * locale). NULL when the year would fall outside 1..9999 (then send no date).
 */
char *append_internaldate(gint64 unix_time);

/*
 * TRUE when name (one path component) is local scratch that is never sent:
 * every dot-named file (rsync's ".x.eml.XXXXXX", ".#x", ".x.swp",
 * ".hidden") and every name ending in '~' (vim's, emacs' and nano's backup
 * "x.eml~"). "." and ".." are TRUE too (they are never files anyway, and
 * never to be sent). FALSE for everything else, including "".
 */
gboolean append_is_scratch_name(const char *name);

#endif
