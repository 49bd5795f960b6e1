/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_parse: a resumable, I/O-free parser for IMAP server responses
 * (RFC 3501 / RFC 9051, plus LITERAL+ and literal8 syntax).
 *
 * The caller feeds bytes exactly as they arrive from the network, in pieces of
 * any size (one byte at a time gives the same results as one large buffer).
 * The parser calls back once per complete response and around every literal;
 * it never reads or writes a socket, never blocks, never logs.
 *
 * The bytes are untrusted. Every size is bounded by struct imap_limits:
 *   - max_line: non-literal bytes of one response, CRLFs and literal headers
 *     included (a response that spans literals counts all its lines);
 *   - max_depth: nesting of parenthesised lists;
 *   - max_elements: values (atoms, strings, NILs, lists, literals) in one response,
 *     resp-text-code arguments included;
 *   - max_literal: the largest literal announced at all ({N}, {N+}, ~{N});
 *   - max_inline_literal: the largest literal buffered into the value tree;
 *   - max_inline_total: the sum of buffered literals in one response (so a
 *     server cannot send 100,000 buffered literals of max_inline_literal each).
 * Numbers are parsed with overflow checks: "{99999999999999999999999}" is an
 * overflow error, "{4294967296}" a limit error, never a wrapped size. Memory held
 * by the parser at any time is thus bounded by roughly
 * max_line + 3 * max_elements * sizeof(struct imap_value) + max_inline_total
 * (a list's items are built in an array, then copied into the response; the
 * arrays are kept for the next response up to 1,024 items each).
 *
 * Streamed literals are never buffered: their bytes go to literal_chunk as
 * pointers into the buffer given to imap_parser_feed (zero copy), in as many
 * pieces as the caller's buffers cut them into.
 *
 * Grammar accepted (lenient where real servers differ, strict where a
 * mistake could desynchronise the stream):
 *   "TAG SP (OK|NO|BAD) [SP [\[CODE args\]] text]"      tagged status
 *   "* (OK|NO|BAD|BYE|PREAUTH) [SP [\[CODE args\]] text]" untagged status
 *   "* NUMBER SP KEYWORD [SP args]"                       e.g. "* 5 FETCH (...)"
 *   "* KEYWORD [SP args]"                                 e.g. "* CAPABILITY ..."
 *   "+ text", "+" alone, "+text"                          continuation
 * Lines end in CRLF or a bare LF. Status text is never tokenized (unbalanced
 * quotes or parentheses in it are fine). In args: atoms (any byte but SP,
 * CTL, DEL, '(', ')', '{', '"'; 8-bit bytes allowed; inside "[...]" of an atom,
 * as in BODY[HEADER.FIELDS (SUBJECT FROM)]<0>, spaces, parentheses and quoted
 * header field names belong to the atom; a FETCH item with a section (BODY,
 * BODY.PEEK, BINARY, BINARY.PEEK, BINARY.SIZE) comes out in one canonical
 * form, upper case, quotes removed, one SP between list members, as
 * BODY[HEADER.FIELDS (SUBJECT FROM)] for body[header.fields ( "Subject"
 * "From" )], so callers compare it with the name they asked for), quoted strings (\" and \\ escapes, a backslash before any other
 * byte yields that byte; CR, LF and NUL rejected), NIL (case-insensitive),
 * lists, and literals {N}, {N+}, ~{N}. Several spaces between values and
 * trailing spaces are tolerated; values that touch ("a"b, {3}..abcX) are not,
 * except a list directly after a list, as in multipart BODYSTRUCTURE.
 *
 * Threads: a parser belongs to one thread at a time. Callbacks run inside
 * imap_parser_feed on the caller's thread; they must not call
 * imap_parser_feed or imap_parser_free on the same parser.
 */
#ifndef MFS_IMAP_PARSE_H
#define MFS_IMAP_PARSE_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_PARSE_ERROR (imap_parse_error_quark())
GQuark imap_parse_error_quark(void);

enum imap_parse_error {
	IMAP_PARSE_ERROR_SYNTAX,   /* malformed response */
	IMAP_PARSE_ERROR_LIMIT,    /* a limit of struct imap_limits exceeded, or a number overflowed */
	IMAP_PARSE_ERROR_FAILED,   /* fed again after an error */
};

struct imap_limits {
	size_t max_line;           /* non-literal bytes in one response; default 64 KiB */
	unsigned max_depth;        /* list nesting; default 64 */
	unsigned max_elements;     /* values in one response; default 100000 */
	uint64_t max_literal;      /* largest literal accepted at all; default 2 GiB */
	size_t max_inline_literal; /* largest literal buffered into the tree; default 1 MiB */
	size_t max_inline_total;   /* buffered literal bytes in one response; default 16 MiB */
};

/* Fill *l with the defaults above. Always start from these, then override.
   imap_parser_new() caps max_depth at 4096 (callers walk values recursively) and
   max_inline_literal at max_inline_total. */
void imap_limits_init_default(struct imap_limits *l);

enum imap_resp_type {
	IMAP_RESP_TAGGED,
	IMAP_RESP_UNTAGGED,
	IMAP_RESP_CONTINUATION,
};

enum imap_status {
	IMAP_STATUS_NONE,
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
};

enum imap_vtype {
	IMAP_V_ATOM,
	IMAP_V_STRING,
	IMAP_V_NIL,
	IMAP_V_LIST,
	IMAP_V_STREAMED,
};

struct imap_value {
	enum imap_vtype type;
	/* ATOM or STRING (a quoted string unescaped, or a buffered literal): always
	   NUL-terminated, but a literal may contain NUL bytes, so use len. */
	char *str;
	size_t len;
	/* LIST */
	struct imap_value *items;
	size_t n;
	/* STREAMED: a literal whose bytes went to the chunk callbacks; also set
	   (== len) for a literal buffered as STRING, 0 for other values. */
	uint64_t literal_size;
};

struct imap_mem_block;

struct imap_response {
	enum imap_resp_type type;
	char *tag;                /* TAGGED only, else NULL */
	/* Tagged responses and untagged OK/NO/BAD/BYE/PREAUTH; NONE otherwise. */
	enum imap_status status;
	gboolean has_number;      /* "* 23 EXISTS", "* 5 FETCH (...)" */
	uint32_t number;
	/* Upper-cased: the status word for status responses ("OK", "BYE"), else the
	   data keyword ("CAPABILITY", "FETCH", "EXISTS", ...). NULL for continuations. */
	char *keyword;
	/* resp-text-code of a status response, e.g. "[UIDVALIDITY 3857529045]":
	   code = "UIDVALIDITY" (upper-cased), code_text = "3857529045" (raw bytes
	   between the name and ']', "" if none), code_args = the arguments tokenized:
	   IMAP_V_LIST (n == 0 when there are none) if they tokenize, IMAP_V_NIL if
	   they do not (an odd code never fails the response). code and code_text
	   are NULL without a code; code_args is then an empty LIST. */
	char *code;
	char *code_text;
	struct imap_value code_args;
	/* Human-readable text of a status response, or of a continuation ("" when
	   absent); NULL for data responses. Untrusted: escape before logging. A NUL
	   byte sent by the server ends it. */
	char *text;
	/* Data responses: IMAP_V_LIST of everything after the keyword, e.g. for
	   "* 5 FETCH (UID 9)" args.items[0] is the list (UID 9). An empty LIST for
	   status responses and continuations. */
	struct imap_value args;
	/* Private: the memory of the response and of every string and list in
	   it, freed as one by imap_response_free(). Nothing of a response may be
	   freed or kept apart from it. */
	struct imap_mem_block *mem;
};

/* Where a literal sits, so the client can decide to stream or buffer it. */
struct imap_literal_ctx {
	/* The response so far: type, tag, has_number/number and keyword are filled;
	   args is not yet (it is built when the response completes). */
	const struct imap_response *resp;
	/* The atom just before the literal in the same list, e.g. "BODY[]",
	   "BODY[]<0>", "BODY[HEADER.FIELDS (SUBJECT)]"; NULL if none. */
	const char *prev_atom;
	/* Lists open around the literal: 1 for "* 5 FETCH (BODY[] {N}", 0 at top level. */
	unsigned depth;
	gboolean literal8;  /* announced as ~{N} */
};

/* Every member may be NULL: no response callback frees responses, no
   literal_begin buffers every literal. */
struct imap_parser_callbacks {
	/* A complete response; ownership passes to the callee (imap_response_free). */
	void (*response)(void *ud, struct imap_response *r);
	/* Every literal is announced once its header is read, before any of its
	   bytes. Return TRUE to receive its bytes through literal_chunk (the value
	   is then IMAP_V_STREAMED), FALSE to have it buffered into the tree (an
	   error if size > max_inline_literal). */
	gboolean (*literal_begin)(void *ud, const struct imap_literal_ctx *ctx, uint64_t size);
	/* Part of a streamed literal, len > 0; data points into the buffer given
	   to imap_parser_feed and is valid only during the call. */
	void (*literal_chunk)(void *ud, const void *data, size_t len);
	/* A streamed literal is complete (also called for a literal of size 0). */
	void (*literal_end)(void *ud);
};

/* limits == NULL: defaults. cb is copied; cb == NULL: no callbacks. */
struct imap_parser *imap_parser_new(const struct imap_limits *limits,
				    const struct imap_parser_callbacks *cb, void *ud);
void imap_parser_free(struct imap_parser *p);

/*
 * Consume bytes. Returns the number consumed: len, or fewer when
 * imap_parser_pause() was called from the response callback, in which case the
 * bytes after that response are not consumed (feed them again later). Bytes
 * that end in the middle of a response are kept (at most max_line of them) and
 * continued by the next call: "need more" is simply a return of len without a
 * response callback.
 * Returns -1 and sets *err (IMAP_PARSE_ERROR) on malformed input or a broken
 * limit; the message says what was malformed and holds a short escaped snippet
 * of the response (the caller prefixes the server's name). After an error the
 * parser is dead: every later call fails with IMAP_PARSE_ERROR_FAILED.
 */
gssize imap_parser_feed(struct imap_parser *p, const void *data, size_t len, GError **err);

/* From the response callback only: make imap_parser_feed return right after
   this response (the client needs this after the OK to STARTTLS, to see
   whether injected bytes followed). Applies to the current feed call only. */
void imap_parser_pause(struct imap_parser *p);

/* TRUE while bytes of an unfinished response are held (or a literal is open):
   e.g. to notice a connection closed in the middle of a response. */
gboolean imap_parser_in_response(const struct imap_parser *p);

void imap_response_free(struct imap_response *r);

/* Helpers, all NULL-safe. Numbers: an ATOM of ASCII digits only (no sign, no
   space), at most 20 digits, that fits the type; anything else is FALSE. */
gboolean imap_value_u32(const struct imap_value *v, uint32_t *out);
gboolean imap_value_u64(const struct imap_value *v, uint64_t *out);
/* ATOM/STRING str, NULL for NIL, LIST, STREAMED. */
const char *imap_value_str(const struct imap_value *v);
/* v is an ATOM equal to upper, ASCII case-insensitively. */
gboolean imap_value_is_atom(const struct imap_value *v, const char *upper);

/* Values of FETCH responses. */
/* "\Seen \Flagged $Work" from a FETCH FLAGS list; \Recent (a session
   note, not a storable flag) is left out. */
char *imap_flags_to_string(const struct imap_value *list);

/* Parse an INTERNALDATE ("17-Jul-1996 02:44:25 -0700") into seconds since the epoch. */
gboolean imap_parse_internaldate(const char *s, gint64 *out);

/* In a FETCH response's att list, the value after the item name `name` (case-insensitive), or NULL. */
const struct imap_value *imap_fetch_item(const struct imap_response *r, const char *name);

/*
 * imap_fetch_item() for n names at once, in one pass over the att list:
 * out[i] is the value after names[i], or NULL. For a caller that reads
 * several items of every message of a listing. An item named twice gives
 * its first value, as imap_fetch_item() does.
 */
void imap_fetch_items(const struct imap_response *r, const char *const *names,
		      const struct imap_value **out, size_t n);

#endif
