/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_decode: a part's bytes made into what .parts shows (mailfs(1),
 * PARTS): transfer decoding, text in UTF-8 with LF line ends, HTML made
 * into text, a header block made readable. Lenient as mail readers are
 * (GMime's decoders): malformed input gives what can be made of it, never
 * an error. Pure: no I/O, any thread. Every output is a new GByteArray.
 */
#ifndef MFS_MIME_DECODE_H
#define MFS_MIME_DECODE_H

#include <glib.h>

/* Transfer decoding of encoding ("base64", "quoted-printable",
   "x-uuencode"/"uuencode", any case); anything else (7bit, 8bit, binary,
   unknown) is copied as it is. */
GByteArray *mime_decode_transfer(const char *encoding, const guint8 *data, gsize len);

/*
 * Text in charset (NULL or unknown to iconv: UTF-8 where valid, else
 * windows-1252) as UTF-8 with LF line ends (CRLF and lone CR become LF);
 * bytes that do not convert become U+FFFD. A NUL byte is dropped.
 */
GByteArray *mime_text_to_utf8(const char *charset, const guint8 *data, gsize len);

/*
 * HTML (UTF-8) as plain text, the small conversion mailfs(1) documents:
 * <script>, <style> and <head> with their contents and comments removed;
 * tags removed; <br> and the ends of block elements (p, div, tr, li, h1-h6,
 * table, blockquote, pre) become line ends, <li> starts "* ", the end of
 * a cell (td, th) a space; runs of spaces, tabs and line ends of the
 * source outside <pre> become one space, more than two line ends in a row
 * become two; the entities &amp; &lt; &gt; &quot; &apos; &nbsp;
 * and numeric ones (&#NN; &#xHH;) decoded, others left as they are;
 * leading and trailing blank lines removed; a final LF.
 */
GByteArray *mime_html_to_text(const guint8 *data, gsize len);

/*
 * A header block (RFC 5322, CRLF or LF) readable: each field on one line
 * "Name: value" (folded lines joined, the fold's CRLF removed), RFC 2047
 * encoded words decoded to UTF-8 (raw 8-bit taken as UTF-8 where valid,
 * else windows-1252), controls other than TAB removed, LF line ends. Stops
 * at the first empty line.
 */
GByteArray *mime_headers_text(const guint8 *data, gsize len);

#endif
