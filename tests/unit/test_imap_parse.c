/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * IMAP response parser: every table case is parsed from one buffer, one byte
 * at a time, and in pieces of 7 bytes; the three runs must agree exactly
 * (responses, literal events, error message).
 */
#include "protocol/imap_client.h"
#include "protocol/imap_parse.h"

#include <string.h>

enum policy {
	POL_INLINE, /* buffer every literal */
	POL_STREAM, /* stream every literal */
	POL_BODY,   /* stream literals after an atom BODY[..., buffer the rest */
};

struct rec {
	GString *out;
	enum policy policy;
	gboolean keep_stream; /* copy streamed bytes into out (small tests) */
	GString *lit;         /* the streamed literal being received */
	uint64_t lit_announced;
	uint64_t chunk_bytes; /* sum over all streamed chunks */
	unsigned responses;
	struct imap_parser *p;
	unsigned pause_at;    /* pause after this response number (1-based); 0: never */
	const char *buf_lo, *buf_hi; /* the buffer being fed, to check zero copy */
	gboolean chunks_in_buffer;
};

static const char *status_name(enum imap_status s)
{
	switch (s) {
	case IMAP_STATUS_OK:
		return "OK";
	case IMAP_STATUS_NO:
		return "NO";
	case IMAP_STATUS_BAD:
		return "BAD";
	case IMAP_STATUS_BYE:
		return "BYE";
	case IMAP_STATUS_PREAUTH:
		return "PREAUTH";
	case IMAP_STATUS_NONE:
		break;
	}
	return NULL;
}

static void dump_bytes(GString *o, const char *s, size_t n)
{
	g_string_append_c(o, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			g_string_append_printf(o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			g_string_append_printf(o, "\\x%02x", c);
		else
			g_string_append_c(o, (char)c);
	}
	g_string_append_c(o, '"');
}

static void dump_value(GString *o, const struct imap_value *v)
{
	switch (v->type) {
	case IMAP_V_ATOM:
		g_assert_cmpuint(strlen(v->str), ==, v->len);
		g_string_append(o, v->str);
		break;
	case IMAP_V_STRING:
		g_assert_cmpint(v->str[v->len], ==, '\0');
		dump_bytes(o, v->str, v->len);
		break;
	case IMAP_V_NIL:
		g_string_append(o, "NIL");
		break;
	case IMAP_V_STREAMED:
		g_string_append_printf(o, "<%" G_GUINT64_FORMAT ">", v->literal_size);
		break;
	case IMAP_V_LIST:
		g_string_append_c(o, '(');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				g_string_append_c(o, ' ');
			dump_value(o, &v->items[i]);
		}
		g_string_append_c(o, ')');
		break;
	}
}

/* One line per response: "TAG|*|+ [#N] [KEYWORD] [[CODE args "text"]] [text="..."] [args]" */
static void dump_response(GString *o, const struct imap_response *r)
{
	switch (r->type) {
	case IMAP_RESP_TAGGED:
		g_assert_nonnull(r->tag);
		g_string_append(o, r->tag);
		break;
	case IMAP_RESP_UNTAGGED:
		g_assert_null(r->tag);
		g_string_append_c(o, '*');
		break;
	case IMAP_RESP_CONTINUATION:
		g_assert_null(r->tag);
		g_assert_null(r->keyword);
		g_string_append_c(o, '+');
		break;
	}
	if (r->has_number)
		g_string_append_printf(o, " #%u", r->number);
	if (r->keyword)
		g_string_append_printf(o, " %s", r->keyword);
	/* The status agrees with the keyword, and only status responses have text. */
	if (r->status != IMAP_STATUS_NONE)
		g_assert_cmpstr(r->keyword, ==, status_name(r->status));
	if (r->type == IMAP_RESP_TAGGED)
		g_assert_cmpint(r->status, !=, IMAP_STATUS_NONE);
	g_assert_true((r->text != NULL) ==
		      (r->status != IMAP_STATUS_NONE || r->type == IMAP_RESP_CONTINUATION));
	g_assert_cmpint(r->args.type, ==, IMAP_V_LIST);
	if (r->code) {
		g_assert_nonnull(r->code_text);
		g_string_append_printf(o, " [%s ", r->code);
		dump_value(o, &r->code_args);
		g_string_append_c(o, ' ');
		dump_bytes(o, r->code_text, strlen(r->code_text));
		g_string_append_c(o, ']');
	} else {
		g_assert_null(r->code_text);
		g_assert_cmpint(r->code_args.type, ==, IMAP_V_LIST);
		g_assert_cmpuint(r->code_args.n, ==, 0);
	}
	if (r->text) {
		g_string_append(o, " text=");
		dump_bytes(o, r->text, strlen(r->text));
	}
	if (r->args.n > 0) {
		g_string_append_c(o, ' ');
		dump_value(o, &r->args);
	}
	g_string_append_c(o, '\n');
}

static void on_response(void *ud, struct imap_response *r)
{
	struct rec *rec = ud;

	rec->responses++;
	dump_response(rec->out, r);
	imap_response_free(r);
	if (rec->pause_at && rec->responses == rec->pause_at)
		imap_parser_pause(rec->p);
}

static gboolean on_literal_begin(void *ud, const struct imap_literal_ctx *ctx, uint64_t size)
{
	struct rec *rec = ud;
	gboolean stream = rec->policy == POL_STREAM ||
			  (rec->policy == POL_BODY && ctx->prev_atom &&
			   g_str_has_prefix(ctx->prev_atom, "BODY["));

	g_assert_nonnull(ctx->resp);
	g_string_append_printf(rec->out, "{%" G_GUINT64_FORMAT " %s d=%u%s%s}", size,
			       ctx->prev_atom ? ctx->prev_atom : "-", ctx->depth,
			       ctx->literal8 ? " l8" : "", stream ? " stream" : "");
	if (stream) {
		g_assert_null(rec->lit);
		rec->lit = g_string_new(NULL);
		rec->lit_announced = size;
	}
	return stream;
}

static void on_literal_chunk(void *ud, const void *data, size_t len)
{
	struct rec *rec = ud;
	const char *d = data;

	g_assert_nonnull(rec->lit);
	g_assert_cmpuint(len, >, 0);
	if (d < rec->buf_lo || d + len > rec->buf_hi)
		rec->chunks_in_buffer = FALSE;
	rec->chunk_bytes += len;
	if (rec->keep_stream)
		g_string_append_len(rec->lit, d, (gssize)len);
	else
		g_string_set_size(rec->lit, rec->lit->len + len);
}

static void on_literal_end(void *ud)
{
	struct rec *rec = ud;

	g_assert_nonnull(rec->lit);
	g_assert_cmpuint(rec->lit->len, ==, rec->lit_announced);
	if (rec->keep_stream)
		dump_bytes(rec->out, rec->lit->str, rec->lit->len);
	g_string_free(rec->lit, TRUE);
	rec->lit = NULL;
}

static const struct imap_parser_callbacks rec_cb = {
	.response = on_response,
	.literal_begin = on_literal_begin,
	.literal_chunk = on_literal_chunk,
	.literal_end = on_literal_end,
};

static void rec_init(struct rec *rec, const struct imap_limits *lim, enum policy pol)
{
	memset(rec, 0, sizeof(*rec));
	rec->out = g_string_new(NULL);
	rec->policy = pol;
	rec->keep_stream = TRUE;
	rec->chunks_in_buffer = TRUE;
	rec->p = imap_parser_new(lim, &rec_cb, rec);
}

static void rec_clear(struct rec *rec)
{
	imap_parser_free(rec->p);
	g_string_free(rec->out, TRUE);
	if (rec->lit)
		g_string_free(rec->lit, TRUE);
}

/* Parse in pieces of `step` bytes (0: all at once). Returns the dump, or "ERROR[code]: message". */
static char *run(const char *in, size_t len, size_t step, const struct imap_limits *lim,
		 enum policy pol)
{
	struct rec rec;
	size_t pos = 0;
	char *res;

	rec_init(&rec, lim, pol);
	if (step == 0)
		step = len ? len : 1;
	while (pos < len) {
		size_t n = MIN(step, len - pos);
		GError *err = NULL;
		gssize got;

		rec.buf_lo = in + pos;
		rec.buf_hi = in + pos + n;
		got = imap_parser_feed(rec.p, in + pos, n, &err);
		if (got < 0) {
			g_assert_nonnull(err);
			g_assert_true(err->domain == IMAP_PARSE_ERROR);
			g_string_append_printf(rec.out, "ERROR[%d]: %s", err->code, err->message);
			g_clear_error(&err);
			/* The parser is dead now. */
			got = imap_parser_feed(rec.p, "* OK\r\n", 6, &err);
			g_assert_cmpint(got, ==, -1);
			g_assert_error(err, IMAP_PARSE_ERROR, IMAP_PARSE_ERROR_FAILED);
			g_clear_error(&err);
			break;
		}
		g_assert_no_error(err);
		g_assert_cmpint(got, ==, (gssize)n);
		pos += n;
	}
	g_assert_true(rec.chunks_in_buffer);
	if (pos == len && imap_parser_in_response(rec.p))
		g_string_append(rec.out, "[partial]");
	res = g_strdup(rec.out->str);
	rec_clear(&rec);
	return res;
}

/* All at once, byte by byte, in pieces of 7: the same result. */
static char *run_all_ways(const char *in, size_t len, const struct imap_limits *lim,
			  enum policy pol)
{
	char *whole = run(in, len, 0, lim, pol);
	g_autofree char *bytes = run(in, len, 1, lim, pol);
	g_autofree char *sevens = run(in, len, 7, lim, pol);

	g_assert_cmpstr(bytes, ==, whole);
	g_assert_cmpstr(sevens, ==, whole);
	return whole;
}

struct valid_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	enum policy pol;
	const char *out;
};

static const struct valid_case valid_cases[] = {
	/* greetings */
	{ "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	  "STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
	  0, POL_INLINE,
	  "* OK [CAPABILITY (IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
	  "AUTH=PLAIN) \"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
	  "AUTH=PLAIN\"] text=\"Dovecot (Debian) ready.\"\n" },
	{ "* PREAUTH [CAPABILITY IMAP4rev1] Logged in as alice\r\n", 0, POL_INLINE,
	  "* PREAUTH [CAPABILITY (IMAP4rev1) \"IMAP4rev1\"] text=\"Logged in as alice\"\n" },
	{ "* BYE Server shutting down.\r\n", 0, POL_INLINE,
	  "* BYE text=\"Server shutting down.\"\n" },
	{ "* ok Still here\n", 0, POL_INLINE, "* OK text=\"Still here\"\n" },
	/* status text is free text: never tokenized */
	{ "* OK Logged in (but see \"x {5}\r\n", 0, POL_INLINE,
	  "* OK text=\"Logged in (but see \\\"x {5}\"\n" },
	{ "* OK\r\n", 0, POL_INLINE, "* OK text=\"\"\n" },
	{ "* NO [\r\n", 0, POL_INLINE, "* NO text=\"[\"\n" },
	{ "* OK [ALERT] {5}\r\n", 0, POL_INLINE, "* OK [ALERT () \"\"] text=\"{5}\"\n" },
	{ "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n", 0, POL_INLINE,
	  "* OK [PERMANENTFLAGS ((\\Deleted \\Seen \\*)) \"(\\\\Deleted \\\\Seen \\\\*)\"] "
	  "text=\"Limited\"\n" },
	{ "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n", 0, POL_INLINE,
	  "* OK [UIDVALIDITY (3857529045) \"3857529045\"] text=\"UIDs valid\"\n" },
	{ "* OK [HIGHESTMODSEQ 715194045007]\r\n", 0, POL_INLINE,
	  "* OK [HIGHESTMODSEQ (715194045007) \"715194045007\"] text=\"\"\n" },
	/* an odd code never fails the response */
	{ "* OK [XWEIRD \"unterminated] text\r\n", 0, POL_INLINE,
	  "* OK [XWEIRD NIL \"\\\"unterminated\"] text=\"text\"\n" },
	{ "* OK [XLIT {3}] hi\r\n", 0, POL_INLINE, "* OK [XLIT NIL \"{3}\"] text=\"hi\"\n" },
	{ "* OK [xfoo bar)] baz\r\n", 0, POL_INLINE, "* OK [XFOO NIL \"bar)\"] text=\"baz\"\n" },
	{ "* NO [UNAVAILABLE] Too many simultaneous connections\r\n", 0, POL_INLINE,
	  "* NO [UNAVAILABLE () \"\"] text=\"Too many simultaneous connections\"\n" },
	/* CAPABILITY, ENABLED, ID, NAMESPACE */
	{ "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN\r\n", 0, POL_INLINE,
	  "* CAPABILITY (IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN)\n" },
	{ "* ENABLED CONDSTORE QRESYNC\r\n", 0, POL_INLINE, "* ENABLED (CONDSTORE QRESYNC)\n" },
	{ "* ENABLED\r\n", 0, POL_INLINE, "* ENABLED\n" },
	{ "* ID (\"name\" \"Dovecot\")\r\n", 0, POL_INLINE, "* ID ((\"name\" \"Dovecot\"))\n" },
	{ "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n", 0, POL_INLINE,
	  "* NAMESPACE (((\"\" \"/\")) NIL NIL)\n" },
	/* LIST: atom, quoted, literal names; NIL delimiter */
	{ "* LIST (\\HasNoChildren) \"/\" INBOX\r\n", 0, POL_INLINE,
	  "* LIST ((\\HasNoChildren) \"/\" INBOX)\n" },
	{ "* LIST (\\Noselect) NIL \"\"\r\n", 0, POL_INLINE, "* LIST ((\\Noselect) NIL \"\")\n" },
	{ "* LIST (\\HasChildren \\Trash) \"/\" \"[Gmail]/Trash\"\r\n", 0, POL_INLINE,
	  "* LIST ((\\HasChildren \\Trash) \"/\" \"[Gmail]/Trash\")\n" },
	{ "* LIST () \"/\" [Gmail]/All\r\n", 0, POL_INLINE, "* LIST (() \"/\" [Gmail]/All)\n" },
	{ "* LIST () \".\" {8}\r\nMy Stuff\r\n", 0, POL_INLINE,
	  "{8 - d=0}* LIST (() \".\" \"My Stuff\")\n" },
	{ "* LIST () \"/\" \"a \\\"quoted\\\" \\\\ name\"\r\n", 0, POL_INLINE,
	  "* LIST (() \"/\" \"a \\\"quoted\\\" \\\\ name\")\n" },
	{ "* LIST () \"/\" \"Entw\xc3\xbcrfe\"\r\n", 0, POL_INLINE,
	  "* LIST (() \"/\" \"Entw\\xc3\\xbcrfe\")\n" },
	{ "* LIST () \"/\" \"odd \\q\"\r\n", 0, POL_INLINE, "* LIST (() \"/\" \"odd q\")\n" },
	/* STATUS */
	{ "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n", 0, POL_INLINE,
	  "* STATUS (blurdybloop (MESSAGES 231 UIDNEXT 44292))\n" },
	{ "* STATUS {4}\r\nA(B) (UIDVALIDITY 7)\r\n", 0, POL_INLINE,
	  "{4 - d=0}* STATUS (\"A(B)\" (UIDVALIDITY 7))\n" },
	/* numbers */
	{ "* 23 EXISTS\r\n* 3 EXPUNGE\r\n* 0 RECENT\r\n", 0, POL_INLINE,
	  "* #23 EXISTS\n* #3 EXPUNGE\n* #0 RECENT\n" },
	{ "* 4294967295 EXISTS\r\n", 0, POL_INLINE, "* #4294967295 EXISTS\n" },
	/* SEARCH, ESEARCH, VANISHED */
	{ "* SEARCH\r\n* SEARCH 2 84 882\r\n* SEARCH 1  2 \r\n", 0, POL_INLINE,
	  "* SEARCH\n* SEARCH (2 84 882)\n* SEARCH (1 2)\n" },
	{ "* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11\r\n", 0, POL_INLINE,
	  "* ESEARCH ((TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11)\n" },
	{ "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n", 0, POL_INLINE,
	  "* VANISHED ((EARLIER) 41,43:116,118,120:211,214:540)\n" },
	{ "* VANISHED 405,407,410\r\n", 0, POL_INLINE, "* VANISHED (405,407,410)\n" },
	{ "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n", 0,
	  POL_INLINE, "* FLAGS ((\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded))\n" },
	/* FETCH */
	{ "* 12 FETCH (UID 4827 FLAGS (\\Seen $Work) RFC822.SIZE 4423 INTERNALDATE "
	  "\"17-Jul-1996 02:44:25 -0700\" MODSEQ (12121231000) BODY[] {5}\r\nHello)\r\n",
	  0, POL_BODY,
	  "{5 BODY[] d=1 stream}\"Hello\"* #12 FETCH ((UID 4827 FLAGS (\\Seen $Work) RFC822.SIZE "
	  "4423 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" MODSEQ (12121231000) BODY[] <5>))\n" },
	{ "* 12 FETCH (BODY[] {5}\r\nHello UID 9)\r\n", 0, POL_INLINE,
	  "{5 BODY[] d=1}* #12 FETCH ((BODY[] \"Hello\" UID 9))\n" },
	{ "* 1 FETCH (BODY[]<1024> {7}\r\na)\r\nb\r\n)\r\n", 0, POL_BODY,
	  "{7 BODY[]<1024> d=1 stream}\"a)\\x0d\\x0ab\\x0d\\x0a\"* #1 FETCH ((BODY[]<1024> <7>))\n" },
	{ "* 1 FETCH (BODY[] {0}\r\n)\r\n", 0, POL_BODY,
	  "{0 BODY[] d=1 stream}\"\"* #1 FETCH ((BODY[] <0>))\n" },
	{ "* 1 FETCH (BODY[] {0}\r\n)\r\n", 0, POL_INLINE, "{0 BODY[] d=1}* #1 FETCH ((BODY[] \"\"))\n" },
	{ "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {24}\r\nSubject: hi\r\nFrom: x\r\n\r\n)\r\n",
	  0, POL_INLINE,
	  "{24 BODY[HEADER.FIELDS (SUBJECT FROM)] d=1}* #2 FETCH ((BODY[HEADER.FIELDS (SUBJECT "
	  "FROM)] \"Subject: hi\\x0d\\x0aFrom: x\\x0d\\x0a\\x0d\\x0a\"))\n" },
	{ "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)]<0> \"x\" BINARY[1] ~{3}\r\na\0b UID 4)\r\n", 76,
	  POL_INLINE,
	  "{3 BINARY[1] d=1 l8}* #2 FETCH ((BODY[HEADER.FIELDS (SUBJECT)]<0> \"x\" BINARY[1] "
	  "\"a\\x00b\" UID 4))\n" },
	/* Section names in every spelling servers use, one canonical form:
	   Courier quotes header field names (an astring), Gmail echoes the
	   case asked for, Exchange and others lower-case keywords or pad the
	   list; a partial and BINARY.SIZE keep their suffix. */
	{ "* 2 FETCH (UID 7 BODY[HEADER.FIELDS (\"SUBJECT\")] {5}\r\nS: x\n)\r\n", 0,
	  POL_INLINE,
	  "{5 BODY[HEADER.FIELDS (SUBJECT)] d=1}* #2 FETCH ((UID 7 BODY[HEADER.FIELDS (SUBJECT)] "
	  "\"S: x\\x0a\"))\n" },
	{ "* 2 FETCH (body[header.fields (\"Subject\" \"From\" To)] \"x\")\r\n", 0, POL_INLINE,
	  "* #2 FETCH ((BODY[HEADER.FIELDS (SUBJECT FROM TO)] \"x\"))\n" },
	{ "* 2 FETCH (BODY[HEADER.FIELDS ( SUBJECT   FROM )] \"x\")\r\n", 0, POL_INLINE,
	  "* #2 FETCH ((BODY[HEADER.FIELDS (SUBJECT FROM)] \"x\"))\n" },
	{ "* 2 FETCH (BODY[HEADER.FIELDS.NOT (\"X-A]\\\"\")] \"x\")\r\n", 0, POL_INLINE,
	  "* #2 FETCH ((BODY[HEADER.FIELDS.NOT (X-A]\")] \"x\"))\n" },
	{ "* 2 FETCH (Body[]<0> \"x\" binary.size[1] 3)\r\n", 0, POL_INLINE,
	  "* #2 FETCH ((BODY[]<0> \"x\" BINARY.SIZE[1] 3))\n" },
	{ "* 3 FETCH (BODY[1] {3+}\r\nabc)\r\n", 0, POL_STREAM,
	  "{3 BODY[1] d=1 stream}\"abc\"* #3 FETCH ((BODY[1] <3>))\n" },
	{ "* 1 FETCH (ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg\" "
	  "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL NIL ((NIL NIL \"imap\" "
	  "\"cac.washington.edu\")) NIL NIL NIL \"<B27397-0100000@cac.washington.edu>\"))\r\n",
	  0, POL_INLINE,
	  "* #1 FETCH ((ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg\" "
	  "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL NIL ((NIL NIL \"imap\" "
	  "\"cac.washington.edu\")) NIL NIL NIL \"<B27397-0100000@cac.washington.edu>\")))\n" },
	{ "* 1 FETCH (ENVELOPE (NIL {9}\r\nSubj\r\nect ((NIL NIL {1}\r\nx \"y\")) nil NiL) UID 5)\r\n",
	  0, POL_BODY,
	  "{9 - d=2}{1 - d=4}* #1 FETCH ((ENVELOPE (NIL \"Subj\\x0d\\x0aect\" ((NIL NIL \"x\" \"y\")) NIL "
	  "NIL) UID 5))\n" },
	{ "* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" "
	  "1152 23)(\"TEXT\" \"PLAIN\" NIL NIL NIL \"BASE64\" 4554 73) \"MIXED\"))\r\n",
	  0, POL_INLINE,
	  "* #1 FETCH ((BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" "
	  "1152 23) (\"TEXT\" \"PLAIN\" NIL NIL NIL \"BASE64\" 4554 73) \"MIXED\")))\n" },
	{ "* 1 FETCH (X-GM-LABELS (\\Inbox \"\\\\Important\") UID 5)\r\n", 0, POL_INLINE,
	  "* #1 FETCH ((X-GM-LABELS (\\Inbox \"\\\\Important\") UID 5))\n" },
	{ "* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n* 2 FETCH (UID 2 BODY[] {2}\r\nde)\r\n", 0,
	  POL_BODY,
	  "{3 BODY[] d=1 stream}\"abc\"* #1 FETCH ((UID 1 BODY[] <3>))\n"
	  "{2 BODY[] d=1 stream}\"de\"* #2 FETCH ((UID 2 BODY[] <2>))\n" },
	/* tagged */
	{ "a1 OK [READ-WRITE] SELECT completed\r\n", 0, POL_INLINE,
	  "a1 OK [READ-WRITE () \"\"] text=\"SELECT completed\"\n" },
	{ "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n", 0, POL_INLINE,
	  "A003 OK [APPENDUID (38505 3955) \"38505 3955\"] text=\"APPEND completed\"\n" },
	{ "A004 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n", 0, POL_INLINE,
	  "A004 OK [COPYUID (38505 304,319:320 3956:3958) \"38505 304,319:320 3956:3958\"] "
	  "text=\"Done\"\n" },
	{ "a2 NO [ALREADYEXISTS] Mailbox already exists\r\n", 0, POL_INLINE,
	  "a2 NO [ALREADYEXISTS () \"\"] text=\"Mailbox already exists\"\n" },
	{ "a3 BAD Error in IMAP command: Unknown command (\r\n", 0, POL_INLINE,
	  "a3 BAD text=\"Error in IMAP command: Unknown command (\"\n" },
	{ "a4 ok\r\n", 0, POL_INLINE, "a4 OK text=\"\"\n" },
	{ "a5 NO [OVERQUOTA] Daily download limit\n", 0, POL_INLINE,
	  "a5 NO [OVERQUOTA () \"\"] text=\"Daily download limit\"\n" },
	/* continuations */
	{ "+ Ready for literal data\r\n", 0, POL_INLINE, "+ text=\"Ready for literal data\"\n" },
	{ "+\r\n", 0, POL_INLINE, "+ text=\"\"\n" },
	{ "+ \r\n", 0, POL_INLINE, "+ text=\"\"\n" },
	{ "+dGVzdA==\n", 0, POL_INLINE, "+ text=\"dGVzdA==\"\n" },
	{ "+ idling\r\n* 4 EXISTS\r\n", 0, POL_INLINE, "+ text=\"idling\"\n* #4 EXISTS\n" },
};

static void test_valid(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(valid_cases); i++) {
		const struct valid_case *tc = &valid_cases[i];
		size_t len = tc->len ? tc->len : strlen(tc->in);
		g_autofree char *got = NULL;

		g_test_message("valid case %zu: %s", i, tc->in);
		got = run_all_ways(tc->in, len, NULL, tc->pol);
		g_assert_cmpstr(got, ==, tc->out);
	}
}

struct invalid_case {
	const char *in;
	enum imap_parse_error code;
	const char *msg; /* a substring of the message; NULL: no error */
	size_t len;      /* 0: strlen(in) */
};

static const struct invalid_case invalid_cases[] = {
	{ "* 1 FETCH (BODY[] {5x}\r\nhello)\r\n", IMAP_PARSE_ERROR_SYNTAX, "malformed literal header", 0 },
	{ "* 1 FETCH (BODY[] {}\r\n)\r\n", IMAP_PARSE_ERROR_SYNTAX, "literal without a size", 0 },
	{ "* 1 FETCH (BODY[] {-1}\r\n)\r\n", IMAP_PARSE_ERROR_SYNTAX, "literal without a size", 0 },
	{ "* 1 FETCH (BODY[] {5} UID 3)\r\n", IMAP_PARSE_ERROR_SYNTAX,
	  "bytes after a literal header", 0 },
	{ "* 1 FETCH (BODY[] {5}", IMAP_PARSE_ERROR_SYNTAX, NULL, 0 }, /* need more: no error */
	{ "* 1 FETCH (BODY[] {4294967296}\r\n", IMAP_PARSE_ERROR_LIMIT,
	  "literal of 4294967296 bytes exceeds the limit of 2147483648", 0 },
	{ "* 1 FETCH (BODY[] {99999999999999999999999}\r\n", IMAP_PARSE_ERROR_LIMIT,
	  "literal size overflows", 0 },
	{ "* 1 FETCH (BODY[] {18446744073709551615}\r\n", IMAP_PARSE_ERROR_LIMIT,
	  "exceeds the limit", 0 },
	{ "* 1 FETCH (BODY[] {18446744073709551616}\r\n", IMAP_PARSE_ERROR_LIMIT,
	  "literal size overflows", 0 },
	{ "* 1 FETCH (BODY[] ~{99999999999999999999999}\r\n", IMAP_PARSE_ERROR_LIMIT,
	  "literal size overflows", 0 },
	{ "* 1 FETCH (BODY[] {3}\r\nabcXYZ)\r\n", IMAP_PARSE_ERROR_SYNTAX,
	  "unexpected bytes right after a literal", 0 },
	{ "* 1 FETCH (BODY[] {3}\r\nabc\"x\")\r\n", IMAP_PARSE_ERROR_SYNTAX,
	  "unexpected bytes right after a literal", 0 },
	{ "* LIST () \"/\" \"abc\r\n", IMAP_PARSE_ERROR_SYNTAX, "unterminated quoted string", 0 },
	{ "* LIST () \"/\" \"abc\\\r\n", IMAP_PARSE_ERROR_SYNTAX, "unterminated quoted string", 0 },
	{ "* LIST () \"/\" \"a\rb\"\r\n", IMAP_PARSE_ERROR_SYNTAX, "CR in quoted string", 0 },
	{ "* LIST () \"/\" \"a\\\rb\"\r\n", IMAP_PARSE_ERROR_SYNTAX, "CR in quoted string", 0 },
	{ "* LIST () \"/\" \"a\0b\"\r\n", IMAP_PARSE_ERROR_SYNTAX, "NUL in quoted string", 21 },
	{ "* LIST () \"/\"\"x\"\r\n", IMAP_PARSE_ERROR_SYNTAX, "missing space between values", 0 },
	{ "* SEARCH 1 2)\r\n", IMAP_PARSE_ERROR_SYNTAX, "unbalanced ')'", 0 },
	{ "* 1 FETCH (UID 1\r\n", IMAP_PARSE_ERROR_SYNTAX, "unterminated list", 0 },
	{ "* 1 FETCH (UID 1)(\r\n", IMAP_PARSE_ERROR_SYNTAX, "unterminated list", 0 },
	{ "* 1 FETCH (BODY[1 {3}\r\nabc)\r\n", IMAP_PARSE_ERROR_SYNTAX, "unterminated '[' in atom", 0 },
	{ "* 2 FETCH (BODY[HEADER.FIELDS (\"SUBJECT)] \"x\")\r\n", IMAP_PARSE_ERROR_SYNTAX,
	  "unterminated quoted string inside [...]", 0 },
	{ "* SEARCH 1\x01\r\n", IMAP_PARSE_ERROR_SYNTAX, "unexpected control byte 0x01", 0 },
	{ "* SEARCH 1\r2\r\n", IMAP_PARSE_ERROR_SYNTAX, "unexpected control byte 0x0d", 0 },
	{ "\r\n", IMAP_PARSE_ERROR_SYNTAX, "empty response line", 0 },
	{ "*\r\n", IMAP_PARSE_ERROR_SYNTAX, "untagged response without keyword", 0 },
	{ "* \r\n", IMAP_PARSE_ERROR_SYNTAX, "untagged response without keyword", 0 },
	{ "* 5\r\n", IMAP_PARSE_ERROR_SYNTAX, "missing keyword after message number", 0 },
	{ "* 5x EXISTS\r\n", IMAP_PARSE_ERROR_SYNTAX, "malformed message number", 0 },
	{ "* 4294967296 EXISTS\r\n", IMAP_PARSE_ERROR_LIMIT, "message number out of range", 0 },
	{ "* 99999999999999999999999 EXISTS\r\n", IMAP_PARSE_ERROR_LIMIT,
	  "message number out of range", 0 },
	{ "* FETCH(UID 1)\r\n", IMAP_PARSE_ERROR_SYNTAX, "malformed response keyword", 0 },
	{ "a1 FOO bar\r\n", IMAP_PARSE_ERROR_SYNTAX, "tagged response without OK/NO/BAD", 0 },
	{ "a1 BYE bar\r\n", IMAP_PARSE_ERROR_SYNTAX, "tagged response without OK/NO/BAD", 0 },
	{ "a1\r\n", IMAP_PARSE_ERROR_SYNTAX, "tagged response without status", 0 },
	{ "a(1 OK x\r\n", IMAP_PARSE_ERROR_SYNTAX, "malformed tag", 0 },
	/* the snippet is escaped */
	{ "* SEARCH \x1b[31m\r\n", IMAP_PARSE_ERROR_SYNTAX, "in: * SEARCH \\x1b[31m", 0 },
	/* after a good response, a bad one */
	{ "* 1 EXISTS\r\n* 1 FETCH (\"x)\r\n", IMAP_PARSE_ERROR_SYNTAX,
	  "unterminated quoted string, in: * 1 FETCH (\"x)", 0 },
};

static void test_invalid(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(invalid_cases); i++) {
		const struct invalid_case *tc = &invalid_cases[i];
		size_t len = strlen(tc->in);
		g_autofree char *got = NULL;
		g_autofree char *prefix = NULL;

		if (tc->len)
			len = tc->len;
		g_test_message("invalid case %zu: %s", i, tc->in);
		got = run_all_ways(tc->in, len, NULL, POL_BODY);
		if (!tc->msg) {
			g_assert_cmpstr(got, ==, "[partial]");
			continue;
		}
		prefix = g_strdup_printf("ERROR[%d]: ", tc->code);
		if (!g_str_has_prefix(got, prefix) && !strstr(got, prefix))
			g_error("case %zu: got %s", i, got);
		if (!strstr(got, tc->msg))
			g_error("case %zu: '%s' not in %s", i, tc->msg, got);
	}
}

static void test_limits(void)
{
	struct imap_limits lim;
	g_autoptr(GString) in = g_string_new(NULL);
	g_autofree char *got = NULL;

	/* 10,000 '(' */
	g_string_assign(in, "* 1 FETCH ");
	for (int i = 0; i < 10000; i++)
		g_string_append_c(in, '(');
	g_string_append(in, "\r\n");
	got = run_all_ways(in->str, in->len, NULL, POL_INLINE);
	g_assert_true(g_str_has_prefix(got, "ERROR[1]: lists nested deeper than 64"));
	g_clear_pointer(&got, g_free);

	/* 64 levels are fine, 65 are not */
	imap_limits_init_default(&lim);
	g_string_assign(in, "* X ");
	for (int i = 0; i < 64; i++)
		g_string_append_c(in, '(');
	for (int i = 0; i < 64; i++)
		g_string_append_c(in, ')');
	g_string_append(in, "\r\n");
	got = run_all_ways(in->str, in->len, &lim, POL_INLINE);
	g_assert_true(g_str_has_prefix(got, "* X ((((("));
	g_clear_pointer(&got, g_free);
	g_string_insert_c(in, 4, '(');
	g_string_insert_c(in, in->len - 2, ')');
	got = run_all_ways(in->str, in->len, &lim, POL_INLINE);
	g_assert_true(g_str_has_prefix(got, "ERROR[1]: lists nested deeper than 64"));
	g_clear_pointer(&got, g_free);

	/* too long a line: 70,000 bytes of atom; the snippet is the line's start */
	g_string_assign(in, "* SEARCH ");
	for (int i = 0; i < 70000; i++)
		g_string_append_c(in, 'a');
	g_string_append(in, "\r\n");
	got = run_all_ways(in->str, in->len, NULL, POL_INLINE);
	g_assert_true(g_str_has_prefix(got, "ERROR[1]: response longer than 65536 bytes, in: * SEARCH aaa"));
	g_assert_cmpuint(strlen(got), <, 200);
	g_clear_pointer(&got, g_free);

	/* the limit counts every line of a response, literal bytes excluded */
	imap_limits_init_default(&lim);
	lim.max_line = 40;
	g_string_assign(in, "* 1 FETCH (BODY[] {50}\r\n");
	for (int i = 0; i < 50; i++)
		g_string_append_c(in, 'x');
	g_string_append(in, " UID 5)\r\n");
	got = run_all_ways(in->str, in->len, &lim, POL_BODY);
	g_assert_true(g_str_has_suffix(got, "* #1 FETCH ((BODY[] <50> UID 5))\n"));
	g_clear_pointer(&got, g_free);
	g_string_insert(in, in->len - 3, " FLAGS (\\Seen)");
	got = run_all_ways(in->str, in->len, &lim, POL_BODY);
	g_assert_true(strstr(got, "ERROR[1]: response longer than 40 bytes, in: * 1 FETCH (BODY[] {50}... {literal}  UID 5 FLAGS (\\\\S"));
	g_clear_pointer(&got, g_free);
	/* exactly max_line is fine */
	lim.max_line = 13;
	got = run_all_ways("* 1 EXISTS\r\n", 12, &lim, POL_BODY);
	g_assert_cmpstr(got, ==, "* #1 EXISTS\n");
	g_clear_pointer(&got, g_free);
	lim.max_line = 12;
	got = run_all_ways("* 1 EXISTS\r\n", 12, &lim, POL_BODY);
	g_assert_cmpstr(got, ==, "* #1 EXISTS\n");
	g_clear_pointer(&got, g_free);
	lim.max_line = 11;
	got = run_all_ways("* 1 EXISTS\r\n", 12, &lim, POL_BODY);
	g_assert_cmpstr(got, ==, "ERROR[1]: response longer than 11 bytes, in: * 1 EXISTS\\r");
	g_clear_pointer(&got, g_free);

	/* too many elements (lists count too) */
	imap_limits_init_default(&lim);
	lim.max_elements = 10;
	got = run_all_ways("* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n", 31, &lim, POL_INLINE);
	g_assert_cmpstr(got, ==, "* SEARCH (1 2 3 4 5 6 7 8 9 10)\n");
	g_clear_pointer(&got, g_free);
	got = run_all_ways("* SEARCH 1 2 3 4 5 6 7 8 9 10 11\r\n", 34, &lim, POL_INLINE);
	g_assert_true(g_str_has_prefix(got, "ERROR[1]: more than 10 values in one response"));
	g_clear_pointer(&got, g_free);
	got = run_all_ways("* X (((((((((( 1))))))))))\r\n", 28, &lim, POL_INLINE);
	g_assert_true(g_str_has_prefix(got, "ERROR[1]: more than 10 values"));
	g_clear_pointer(&got, g_free);
	/* the count starts again with each response */
	got = run_all_ways("* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n", 62,
			   &lim, POL_INLINE);
	g_assert_cmpstr(got, ==, "* SEARCH (1 2 3 4 5 6 7 8 9 10)\n* SEARCH (1 2 3 4 5 6 7 8 9 10)\n");
	g_clear_pointer(&got, g_free);

	/* buffered literals: one too large; too many in total */
	imap_limits_init_default(&lim);
	lim.max_inline_literal = 4;
	lim.max_inline_total = 6;
	got = run_all_ways("* 1 FETCH (X {5}\r\nhello)\r\n", 26, &lim, POL_BODY);
	g_assert_true(strstr(got, "ERROR[1]: literal of 5 bytes too large to buffer (limit 4)"));
	g_clear_pointer(&got, g_free);
	got = run_all_ways("* 1 FETCH (BODY[] {5}\r\nhello)\r\n", 31, &lim, POL_BODY);
	g_assert_cmpstr(got, ==, "{5 BODY[] d=1 stream}\"hello\"* #1 FETCH ((BODY[] <5>))\n");
	g_clear_pointer(&got, g_free);
	got = run_all_ways("* 1 FETCH (X {4}\r\nabcd Y {3}\r\nabc)\r\n", 37, &lim, POL_BODY);
	g_assert_true(strstr(got, "ERROR[1]: buffered literals exceed 6 bytes in one response"));
	g_clear_pointer(&got, g_free);
	got = run_all_ways("* 1 FETCH (X {4}\r\nabcd)\r\n* 2 FETCH (X {4}\r\nabcd)\r\n", 50, &lim,
			   POL_BODY);
	g_assert_cmpstr(got, ==, "{4 X d=1}* #1 FETCH ((X \"abcd\"))\n{4 X d=1}* #2 FETCH ((X \"abcd\"))\n");
	g_clear_pointer(&got, g_free);

	/* max_literal */
	lim.max_literal = 5;
	got = run_all_ways("* 1 FETCH (BODY[] {6}\r\nhello!)\r\n", 32, &lim, POL_BODY);
	g_assert_true(g_str_has_prefix(got, "ERROR[1]: literal of 6 bytes exceeds the limit of 5"));
}

/* A literal of 10 MB goes through in chunks, pointing into the fed buffers. */
static void test_big_literal(void)
{
	const size_t size = 10 * 1024 * 1024, piece = 65536;
	const char *head = "* 1 FETCH (UID 7 RFC822.SIZE 10485760 BODY[] {10485760}\r\n";
	g_autofree char *buf = g_malloc(piece);
	struct rec rec;
	GError *err = NULL;
	size_t sent = 0;

	for (size_t i = 0; i < piece; i++)
		buf[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	rec_init(&rec, NULL, POL_BODY);
	rec.keep_stream = FALSE;
	rec.buf_lo = head;
	rec.buf_hi = head + strlen(head);
	g_assert_cmpint(imap_parser_feed(rec.p, head, strlen(head), &err), ==, (gssize)strlen(head));
	g_assert_cmpstr(rec.out->str, ==, "{10485760 BODY[] d=1 stream}");
	rec.buf_lo = buf;
	rec.buf_hi = buf + piece;
	while (sent < size) {
		size_t n = MIN(piece, size - sent);

		g_assert_cmpint(imap_parser_feed(rec.p, buf, n, &err), ==, (gssize)n);
		g_assert_no_error(err);
		sent += n;
		g_assert_true(imap_parser_in_response(rec.p));
	}
	g_assert_cmpuint(rec.chunk_bytes, ==, size);
	g_assert_true(rec.chunks_in_buffer);
	g_assert_null(rec.lit);
	rec.buf_lo = ")\r\n";
	g_assert_cmpint(imap_parser_feed(rec.p, ")\r\n", 3, &err), ==, 3);
	g_assert_cmpuint(rec.responses, ==, 1);
	g_assert_cmpstr(rec.out->str, ==,
			"{10485760 BODY[] d=1 stream}* #1 FETCH ((UID 7 RFC822.SIZE 10485760 BODY[] "
			"<10485760>))\n");
	rec_clear(&rec);
}

static void test_literal_ctx(void)
{
	g_autofree char *got = NULL;

	/* literal at top level (no previous atom), nested, after a string */
	got = run_all_ways("* X {1}\r\na \"s\" {1}\r\nb ((Y {1}\r\nc))\r\n", 36, NULL, POL_INLINE);
	g_assert_cmpstr(got, ==, "{1 - d=0}{1 - d=0}{1 Y d=2}* X (\"a\" \"s\" \"b\" ((Y \"c\")))\n");
}

struct pause_rec {
	struct imap_parser *p;
	unsigned n;
	gboolean pause;
};

static void pause_response(void *ud, struct imap_response *r)
{
	struct pause_rec *pr = ud;

	pr->n++;
	if (pr->pause && r->type == IMAP_RESP_TAGGED)
		imap_parser_pause(pr->p);
	imap_response_free(r);
}

static void test_pause(void)
{
	static const struct imap_parser_callbacks cb = { .response = pause_response };
	const char *in = "a1 OK Begin TLS negotiation now\r\n* OK injected\r\n";
	struct pause_rec pr = { 0 };
	GError *err = NULL;
	gssize got;

	pr.p = imap_parser_new(NULL, &cb, &pr);
	pr.pause = TRUE;
	/* STARTTLS: the bytes after the OK are left unconsumed, for the client to see */
	got = imap_parser_feed(pr.p, in, strlen(in), &err);
	g_assert_no_error(err);
	g_assert_cmpint(got, ==, 33);
	g_assert_cmpuint(pr.n, ==, 1);
	g_assert_false(imap_parser_in_response(pr.p));
	/* the pause lasts for one feed: the rest goes on */
	got = imap_parser_feed(pr.p, in + got, strlen(in) - 33, &err);
	g_assert_cmpint(got, ==, (gssize)strlen(in) - 33);
	g_assert_cmpuint(pr.n, ==, 2);
	/* a pause after the last response of the buffer consumes it all */
	got = imap_parser_feed(pr.p, "a2 OK\r\n", 7, &err);
	g_assert_cmpint(got, ==, 7);
	/* untagged responses do not pause here; several before the tagged one */
	got = imap_parser_feed(pr.p, "* 1 EXISTS\r\n* 1 FETCH (BODY[] {2}\r\nab)\r\na3 OK\r\n* 2 EXISTS\r\n",
			       59, &err);
	g_assert_cmpint(got, ==, 47);
	g_assert_cmpuint(pr.n, ==, 6);
	imap_parser_free(pr.p);
}

static void test_need_more(void)
{
	struct rec rec;
	GError *err = NULL;

	rec_init(&rec, NULL, POL_BODY);
	g_assert_false(imap_parser_in_response(rec.p));
	g_assert_cmpint(imap_parser_feed(rec.p, "", 0, &err), ==, 0);
	g_assert_cmpint(imap_parser_feed(rec.p, "* 1 EXI", 7, &err), ==, 7);
	g_assert_cmpuint(rec.responses, ==, 0);
	g_assert_true(imap_parser_in_response(rec.p));
	g_assert_cmpint(imap_parser_feed(rec.p, "STS\r", 4, &err), ==, 4);
	g_assert_cmpuint(rec.responses, ==, 0);
	g_assert_cmpint(imap_parser_feed(rec.p, "\n* 2 FETCH (BODY[] {3}\r\n", 24, &err), ==, 24);
	g_assert_cmpuint(rec.responses, ==, 1);
	g_assert_true(imap_parser_in_response(rec.p));
	g_assert_cmpint(imap_parser_feed(rec.p, "abc", 3, &err), ==, 3);
	g_assert_true(imap_parser_in_response(rec.p));
	g_assert_cmpint(imap_parser_feed(rec.p, ")\r\n", 3, &err), ==, 3);
	g_assert_no_error(err);
	g_assert_cmpuint(rec.responses, ==, 2);
	g_assert_false(imap_parser_in_response(rec.p));
	g_assert_cmpstr(rec.out->str, ==, "* #1 EXISTS\n{3 BODY[] d=1 stream}\"abc\"* #2 FETCH ((BODY[] <3>))\n");
	rec_clear(&rec);
}

/* Without callbacks every literal is buffered and every response freed. */
static void test_no_callbacks(void)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL, NULL);
	const char *in = "* 1 FETCH (BODY[] {3}\r\nabc)\r\na1 OK done\r\n";
	GError *err = NULL;

	g_assert_cmpint(imap_parser_feed(p, in, strlen(in), &err), ==, (gssize)strlen(in));
	g_assert_no_error(err);
	/* a half response held at free time is released too */
	g_assert_cmpint(imap_parser_feed(p, "* 2 FETCH (X {3}\r\na", 19, &err), ==, 19);
	imap_parser_free(p);
}

static void test_value_helpers(void)
{
	static const struct {
		const char *s;
		gboolean ok32;
		uint32_t v32;
		gboolean ok64;
		uint64_t v64;
	} nums[] = {
		{ "0", TRUE, 0, TRUE, 0 },
		{ "007", TRUE, 7, TRUE, 7 },
		{ "4294967295", TRUE, UINT32_MAX, TRUE, UINT32_MAX },
		{ "4294967296", FALSE, 0, TRUE, 4294967296ULL },
		{ "18446744073709551615", FALSE, 0, TRUE, UINT64_MAX },
		{ "18446744073709551616", FALSE, 0, FALSE, 0 },
		{ "99999999999999999999", FALSE, 0, FALSE, 0 },
		{ "000000000000000000001", FALSE, 0, FALSE, 0 },
		{ "", FALSE, 0, FALSE, 0 },
		{ "-1", FALSE, 0, FALSE, 0 },
		{ "+1", FALSE, 0, FALSE, 0 },
		{ "12a", FALSE, 0, FALSE, 0 },
		{ " 1", FALSE, 0, FALSE, 0 },
	};
	struct imap_value v = { 0 };
	char nil_str[] = "x";

	for (size_t i = 0; i < G_N_ELEMENTS(nums); i++) {
		uint32_t v32 = 42;
		uint64_t v64 = 42;

		v.type = IMAP_V_ATOM;
		v.str = (char *)(uintptr_t)nums[i].s;
		v.len = strlen(nums[i].s);
		g_assert_cmpint(imap_value_u32(&v, &v32), ==, nums[i].ok32);
		if (nums[i].ok32)
			g_assert_cmpuint(v32, ==, nums[i].v32);
		g_assert_cmpint(imap_value_u64(&v, &v64), ==, nums[i].ok64);
		if (nums[i].ok64)
			g_assert_cmpuint(v64, ==, nums[i].v64);
	}
	v.type = IMAP_V_STRING;
	v.str = (char *)(uintptr_t)"5";
	v.len = 1;
	g_assert_false(imap_value_u32(&v, &(uint32_t){ 0 }));
	g_assert_cmpstr(imap_value_str(&v), ==, "5");
	g_assert_false(imap_value_is_atom(&v, "5"));
	v.type = IMAP_V_ATOM;
	v.str = (char *)(uintptr_t)"Fetch";
	v.len = 5;
	g_assert_true(imap_value_is_atom(&v, "FETCH"));
	g_assert_false(imap_value_is_atom(&v, "FETCHX"));
	g_assert_false(imap_value_is_atom(&v, "FETC"));
	g_assert_cmpstr(imap_value_str(&v), ==, "Fetch");
	v.type = IMAP_V_NIL;
	v.str = nil_str;
	g_assert_null(imap_value_str(&v));
	g_assert_null(imap_value_str(NULL));
	g_assert_false(imap_value_u64(NULL, &(uint64_t){ 0 }));
	g_assert_false(imap_value_is_atom(NULL, "X"));
}

/* INTERNALDATE (RFC 3501 date-time) -> seconds since the epoch. */
static void test_internaldate(void)
{
	static const struct {
		const char *text;
		gboolean ok;
		gint64 t;
	} v[] = {
		{ "17-Jul-1996 02:44:25 -0700", TRUE, 837596665 },
		{ " 1-Jan-2000 00:00:00 +0000", TRUE, 946684800 },
		{ "1-Jan-2000 00:00:00 +0000", TRUE, 946684800 },
		{ "01-Jan-2000 00:00:00 -0000", TRUE, 946684800 },
		{ "31-Dec-1969 23:59:59 +0000", TRUE, -1 },
		{ "29-Feb-2024 12:00:00 +0530", TRUE, 1709188200 },
		{ "01-Jan-1900 00:00:00 +0000", TRUE, -2208988800 },
		{ "10-Jan-2024 23:59:60 +0000", TRUE, 1704931199 }, /* a leap second */
		{ "10-Jan-2024 1:2:3 +0000", TRUE, 1704848523 },
		{ "31-Dec-2099 23:59:59 -2359", TRUE, 4102531139 },
		{ "10-Jan-2024 01:02:03 +0000 trailing", TRUE, 1704848523 },
		{ "10-jAN-2024 01:02:03 +0000", TRUE, 1704848523 },
		{ "29-Feb-2023 12:00:00 +0000", FALSE, 0 },
		{ "30-Feb-2024 12:00:00 +0000", FALSE, 0 },
		{ "31-Apr-2024 12:00:00 +0000", FALSE, 0 },
		{ "32-Jan-2024 12:00:00 +0000", FALSE, 0 },
		{ "00-Jan-2024 12:00:00 +0000", FALSE, 0 },
		{ "10-Foo-2024 12:00:00 +0000", FALSE, 0 },
		{ "10-Janx-2024 12:00:00 +0000", FALSE, 0 },
		{ "10-Jan-1899 12:00:00 +0000", FALSE, 0 },
		{ "10-Jan-20245 12:00:00 +0000", FALSE, 0 },
		{ "10-Jan-2024 24:00:00 +0000", FALSE, 0 },
		{ "10-Jan-2024 12:60:00 +0000", FALSE, 0 },
		{ "10-Jan-2024 12:00:61 +0000", FALSE, 0 },
		{ "10-Jan-2024 12:00:00 +2400", FALSE, 0 },
		{ "10-Jan-2024 12:00:00 +0060", FALSE, 0 },
		{ "10-Jan-2024 12:00:00 0000", FALSE, 0 },
		{ "10-Jan-2024 12:00:00", FALSE, 0 },
		{ "10-Jan-2024", FALSE, 0 },
		{ "10-Jan-", FALSE, 0 },
		{ "10-Ja", FALSE, 0 },
		{ "", FALSE, 0 },
		{ "10-Jan-2024 12:00:00 +0000                    long", FALSE, 0 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
		gint64 t = 42;
		gboolean ok = imap_parse_internaldate(v[i].text, &t);

		if (ok != v[i].ok || (ok && t != v[i].t))
			g_error("'%s': got %d %" G_GINT64_FORMAT ", want %d %" G_GINT64_FORMAT,
				v[i].text, ok, t, v[i].ok, v[i].t);
	}
	g_assert_false(imap_parse_internaldate(NULL, NULL));

	/* Every 13th day from 1900 to 2100 against GDateTime's arithmetic. */
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	g_autoptr(GDateTime) day = g_date_time_new_utc(1900, 1, 1, 13, 7, 9);

	while (g_date_time_get_year(day) < 2100) {
		g_autofree char *text = g_strdup_printf(
		    "%02d-%s-%04d 13:07:09 -0130", g_date_time_get_day_of_month(day),
		    mon[g_date_time_get_month(day) - 1], g_date_time_get_year(day));
		gint64 t = 0;
		GDateTime *next;

		g_assert_true(imap_parse_internaldate(text, &t));
		g_assert_cmpint(t, ==, g_date_time_to_unix(day) + 5400);
		next = g_date_time_add_days(day, 13);
		g_date_time_unref(day);
		day = next;
	}
}

static void keep_first(void *ud, struct imap_response *r)
{
	struct imap_response **out = ud;

	g_assert_null(*out);
	*out = r;
}

/* One response of len bytes parsed, or NULL when it does not parse. */
static struct imap_response *parse_line(const char *line, size_t len)
{
	const struct imap_parser_callbacks cb = { .response = keep_first };
	struct imap_response *r = NULL;
	struct imap_parser *p = imap_parser_new(NULL, &cb, &r);
	GError *err = NULL;

	if (imap_parser_feed(p, line, len, &err) < 0) {
		g_clear_error(&err);
		g_clear_pointer(&r, imap_response_free);
	}
	imap_parser_free(p);
	return r;
}

static void test_status_answer(void)
{
	static const struct {
		const char *line;
		const char *mailbox; /* NULL: not a mailbox's state */
		struct imap_select_info want;
	} cases[] = {
		{ "* STATUS Archive/2024 (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1796646225 UNSEEN 0 "
		  "HIGHESTMODSEQ 5)\r\n",
		  "Archive/2024", { 1796646225, 4, 3, 5, FALSE } },
		{ "* STATUS \"Project X\" (UIDVALIDITY 7 UIDNEXT 1 MESSAGES 0)\r\n", "Project X",
		  { 7, 1, 0, 0, FALSE } },
		{ "* STATUS {9}\r\nEntw\xc3\xbcrfe (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 9)\r\n",
		  "Entw\xc3\xbcrfe", { 9, 2, 1, 0, FALSE } },
		{ "* STATUS inbox (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 9)\r\n", "INBOX",
		  { 9, 2, 1, 0, FALSE } },
		/* What a listing needs is missing: no state. */
		{ "* STATUS Sent (MESSAGES 1 UIDNEXT 2)\r\n", NULL, { 0 } },
		{ "* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY x)\r\n", NULL, { 0 } },
		{ "* STATUS Sent (MESSAGES 1 UIDNEXT 4294967296 UIDVALIDITY 3)\r\n", NULL, { 0 } },
		{ "* STATUS Sent MESSAGES\r\n", NULL, { 0 } },
		{ "* STATUS \"\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)\r\n", NULL, { 0 } },
		{ "* LIST () \"/\" Sent\r\n", NULL, { 0 } },
		/* A HIGHESTMODSEQ that is no number is no HIGHESTMODSEQ. */
		{ "* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3 HIGHESTMODSEQ -1)\r\n", "Sent",
		  { 3, 2, 1, 0, FALSE } },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct imap_response *r = parse_line(cases[i].line, strlen(cases[i].line));
		struct imap_select_info got;
		const char *name = NULL;
		gboolean ok;

		if (!r) {
			g_assert_null(cases[i].mailbox);
			continue;
		}
		ok = imap_status_parse(r, &name, &got);
		g_assert_cmpint(ok, ==, cases[i].mailbox != NULL);
		if (ok) {
			g_assert_cmpstr(name, ==, cases[i].mailbox);
			g_assert_cmpuint(got.uidvalidity, ==, cases[i].want.uidvalidity);
			g_assert_cmpuint(got.uidnext, ==, cases[i].want.uidnext);
			g_assert_cmpuint(got.exists, ==, cases[i].want.exists);
			g_assert_cmpuint(got.highestmodseq, ==, cases[i].want.highestmodseq);
		} else {
			g_assert_cmpuint(got.uidvalidity | got.uidnext | got.exists, ==, 0);
		}
		imap_response_free(r);
	}
	{
		/* A name with a NUL byte in it names no mailbox. */
		static const char nul[] = "* STATUS {3}\r\na\0b (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)\r\n";
		struct imap_response *r = parse_line(nul, sizeof(nul) - 1);
		struct imap_select_info got;
		const char *name = NULL;

		g_assert_nonnull(r);
		g_assert_false(imap_status_parse(r, &name, &got));
		imap_response_free(r);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap_parse/valid", test_valid);
	g_test_add_func("/imap_parse/invalid", test_invalid);
	g_test_add_func("/imap_parse/limits", test_limits);
	g_test_add_func("/imap_parse/big_literal", test_big_literal);
	g_test_add_func("/imap_parse/literal_ctx", test_literal_ctx);
	g_test_add_func("/imap_parse/pause", test_pause);
	g_test_add_func("/imap_parse/need_more", test_need_more);
	g_test_add_func("/imap_parse/no_callbacks", test_no_callbacks);
	g_test_add_func("/imap_parse/value_helpers", test_value_helpers);
	g_test_add_func("/imap_parse/internaldate", test_internaldate);
	g_test_add_func("/imap_parse/status_answer", test_status_answer);
	return g_test_run();
}
