/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * headers: the values behind the read-only header xattrs (mailfs(1),
 * EXTENDED ATTRIBUTES: user.mail.subject, .from, .to, .date, .message-id).
 *
 * Input is what the server sends for
 * BODY.PEEK[HEADER.FIELDS (SUBJECT FROM TO DATE MESSAGE-ID)]: raw bytes,
 * CRLF or bare LF line ends, folded lines, RFC 2047 encoded words in any
 * charset, raw 8-bit text, NUL bytes, malformed lines, repeated fields. It is
 * untrusted; parsing never fails, it keeps what can be recovered:
 *
 *   - A field starts on a line "Name:" (name case-insensitive, blanks before
 *     the ':' tolerated); a line starting with SP or TAB continues the
 *     previous field; a line that is neither is skipped; an empty line ends
 *     the block. The first occurrence of a field wins.
 *   - Values are unfolded (the line break goes, the blank stays) and trimmed.
 *   - subject: RFC 2047 decoded (GMime, g_mime_utils_header_decode_text).
 *   - from, to: parsed as an address list and printed readable, not encoded:
 *     "Jörg Müller <joerg@example.org>, bob@example.org". If GMime finds no
 *     address, or the printed list still holds an encoded word (one GMime
 *     took for a local part), the text decoded as for subject.
 *   - date, message_id: the value as written (message_id with its <>).
 *   - Raw 8-bit text is read as UTF-8 where valid, else windows-1252 (GMime's
 *     fallback charsets, fixed here, not the locale's).
 *   - Every value: control characters (C0 except TAB, DEL, C1 U+0080..U+009F)
 *     removed, invalid UTF-8 replaced by U+FFFD, cut to at most
 *     MAIL_HEADERS_VALUE_MAX bytes on a character boundary. A field present
 *     with an empty value gives "", an absent one NULL.
 *   - At most MAIL_HEADERS_RAW_MAX bytes of one raw value are looked at, so a
 *     huge header costs bounded work.
 *
 * Memory: mail_headers_parse() fills *out with newly allocated strings
 * (g_free each, or mail_headers_clear()); it overwrites *out without freeing
 * what was there. mail_headers_clear() frees the strings and sets them NULL;
 * it may be called again on a cleared struct.
 *
 * Threads: any thread, concurrently. GMime is initialised once on first use
 * (pthread_once); the parser options are shared and never changed after that.
 */
#ifndef MFS_HEADERS_H
#define MFS_HEADERS_H

#include <stddef.h>

#define MAIL_HEADERS_VALUE_MAX 4096
#define MAIL_HEADERS_RAW_MAX (32 * 1024)

struct mail_headers {
	char *subject;
	char *from;
	char *to;
	char *date;
	char *message_id;
};

/* Parse len bytes at data (need not be NUL-terminated; data may be NULL when len is 0). */
void mail_headers_parse(const char *data, size_t len, struct mail_headers *out);

void mail_headers_clear(struct mail_headers *h);

/* GMime initialised (once, any thread) and the parser options every model
   module that reads mail with GMime shares: fixed fallback charsets, never
   changed. */
struct _GMimeParserOptions;
struct _GMimeParserOptions *mail_gmime_options(void);

/*
 * One unfolded raw header value (len bytes, any bytes) decoded for display
 * as subject is above, but not cut: RFC 2047 words decoded, raw 8-bit as
 * UTF-8 where valid else windows-1252, controls but TAB removed, trimmed,
 * valid UTF-8. For .parts' header view (model/mime_decode.h). g_free it.
 */
char *mail_headers_decode_text(const char *raw, size_t len);

#endif
