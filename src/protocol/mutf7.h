/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mutf7: IMAP mailbox names in modified UTF-7 (RFC 3501 §5.1.3), both ways.
 *
 * On the wire a mailbox name is printable ASCII (0x20..0x7e): those characters
 * stand for themselves, "&-" stands for '&', and every other character is
 * written as "&" + modified BASE64 (alphabet A-Z a-z 0-9 + ,  no '=' padding)
 * of its UTF-16BE form + "-".
 *
 * The decoder is strict: it accepts exactly the strings the encoder produces,
 * so mutf7_encode(mutf7_decode(w)) == w whenever decoding succeeds, and a name
 * that does not survive that round trip is never guessed at (the caller shows
 * it escaped instead, see model/names.h). Rejected:
 *  - a byte outside 0x20..0x7e;
 *  - '&' without its closing '-', a character outside the modified BASE64
 *    alphabet inside a shift, a shift whose padding bits are not zero or
 *    that holds a partial UTF-16 unit;
 *  - a shift that encodes a printable ASCII character (0x20..0x7e) or U+0000;
 *  - two shifts back to back ("&AOQ-&APY-": the spec wants one);
 *  - a UTF-16 surrogate that is not part of a well-formed pair inside one shift.
 *
 * Errors are G_CONVERT_ERROR_ILLEGAL_SEQUENCE with the byte offset in the
 * message. Results are newly allocated (g_free). Pure functions: any thread.
 */
#ifndef MFS_MUTF7_H
#define MFS_MUTF7_H

#include <glib.h>

/* Wire (modified UTF-7) -> UTF-8. NULL and *err if wire is not valid mUTF-7. */
char *mutf7_decode(const char *wire, GError **err);

/* UTF-8 -> wire. NULL and *err if utf8 is not valid UTF-8. */
char *mutf7_encode(const char *utf8, GError **err);

#endif
