/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * names: how server strings become file names (mailfs(1), Message names).
 * Two frozen rules: names already on users' disks and in their scripts must
 * not change between versions:
 *
 * 1. The one reversible escape (names_escape / names_unescape). A string from
 *    the server (a decoded mailbox name, a POP3 UIDL) becomes a path component
 *    only through names_escape(), which writes these bytes as %XX (upper-case
 *    hex) and copies every other byte unchanged:
 *      - '%' itself;
 *      - '/', NUL, the C0 controls 0x01..0x1f, DEL 0x7f, and the C1 controls
 *        U+0080..U+009F (each byte of their UTF-8 form), so that `ls` never
 *        prints a terminal control;
 *      - every byte that is not part of a valid UTF-8 sequence (RFC 3629: no
 *        overlong forms, no surrogates, nothing above U+10FFFF);
 *      - a leading '.' (no ".", "..", nor a hidden or scratch name: dot-named
 *        files are local temporaries, mailfs(1) WRITING);
 *      - the first character of a result that would look like a message file,
 *        i.e. match ^[0-9]+(-.*)?\.eml$, becomes %3X, so that a folder is never
 *        resolved as a message (see names_parse_uid);
 *    and the empty string becomes "%" (a lone '%' is otherwise impossible).
 *    The result is never "", "." or "..", holds no '/' and no NUL, and is
 *    valid UTF-8. It can be up to three times longer than the input, so it
 *    may exceed NAME_MAX (255): that check is the caller's (ENAMETOOLONG).
 *
 *    names_unescape() is the exact inverse and accepts only what names_escape()
 *    can produce: escapes must be two upper-case hex digits ("%2e" is
 *    rejected), and a component that is not the canonical escape of its
 *    decoding ("%41" for "A", a plain leading ".") is rejected. So for every
 *    component c: either names_unescape(c) fails, or
 *    names_escape(names_unescape(c)) == c; the map is a bijection between
 *    byte strings and valid components.
 *
 * 2. The message file name (names = uid-subject): "UID-SLUG.eml", or
 *    "UID.eml" when the slug is empty (and always with names = uid). SLUG is
 *    names_subject_slug() of the raw Subject header:
 *      - RFC 2047 decoded to UTF-8 by this module (not GMime, whose result
 *        depends on the locale and its version): encoded words are found
 *        even inside a word, whitespace between two of them is dropped, the
 *        bytes of adjacent words in one charset are joined before conversion
 *        (iconv). Text in no declared charset (raw 8-bit), or in a charset
 *        iconv does not know or whose bytes do not convert, is taken as UTF-8
 *        where valid, else windows-1252, else ISO-8859-1; a word labelled
 *        UTF-8 keeps its valid parts, invalid bytes and NUL become U+FFFD
 *        (then dropped). Never the locale's charset. A charset name other
 *        than [A-Za-z0-9._:-]{1,40} (after an RFC 2231 "*lang") is unknown;
 *      - leading and trailing whitespace removed (where the Subject value
 *        starts is up to whoever extracted it), NFC-normalised;
 *      - each run of whitespace (g_unichar_isspace: incl. CR, LF, TAB and the
 *        Unicode space separators) -> one '_';
 *      - then every character that is neither a letter (g_unichar_isalpha) nor
 *        a digit (g_unichar_isdigit) nor one of  . - _ + , @ =  is dropped,
 *        so "a / b" gives "a__b" and "Re: Hi" gives "Re_Hi";
 *      - cut to at most NAMES_SLUG_MAX bytes on a character boundary.
 *    Letters and digits are those of GLib's Unicode tables: a code point that
 *    a later Unicode version makes a letter would change a name. Accepted.
 *    A message file name is at most 10 + 1 + 64 + 4 bytes, valid UTF-8, never
 *    starts with '.', holds no '/'.
 *
 * Memory: every char * returned is newly allocated (g_free). Pure functions:
 * any thread.
 */
#ifndef MFS_NAMES_H
#define MFS_NAMES_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#define NAMES_SLUG_MAX 64

/* Escape len bytes of s (may hold NUL; s may be NULL when len is 0). Never NULL. */
char *names_escape(const char *s, size_t len);

/*
 * Inverse of names_escape(). Returns the bytes (with a NUL appended, not
 * counted in *out_len, so a name without NUL can be used as a string), or
 * NULL and G_CONVERT_ERROR_ILLEGAL_SEQUENCE if component is not a canonical
 * escape. out_len may be NULL.
 */
char *names_unescape(const char *component, size_t *out_len, GError **err);

/* Slug of a raw Subject header value (NULL: no Subject) as above. Never NULL; may be "". */
char *names_subject_slug(const char *raw_subject);

/*
 * "UID-SLUG.eml", or "UID.eml" when slug is NULL or "". slug must come from
 * names_subject_slug(); uid must be non-zero (returns NULL otherwise, with a
 * critical warning: a programming error).
 */
char *names_message_name(uint32_t uid, const char *slug);

/*
 * The UID of a message file name: decimal digits without leading zero,
 * non-zero, at most UINT32_MAX, followed by exactly ".eml" or by "-" and a
 * rest ending in ".eml". FALSE otherwise. Only the UID is checked: whether
 * the rest matches the message's slug is the caller's comparison (ENOENT).
 */
gboolean names_parse_uid(const char *name, uint32_t *uid);

#endif
