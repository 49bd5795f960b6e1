/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/imap_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "protocol/errmap.h"
#include "protocol/uidset.h"
#include "transport/conn.h"
#include "transport/secret.h"
#include "util/log.h"

#define TRACE_MAX 300
/* Literals after a body section larger than this that nobody asked for are
   streamed away instead of being buffered (RFC 3501 §7: unsolicited data). */
#define UNSOLICITED_INLINE_MAX 4096
/* A VANISHED set longer than this is not counted (EXISTS comes again). */
#define VANISHED_RANGES_MAX 100000

struct pending {
	char tag[16];
	gboolean done;
	struct imap_result res;
	/* A SELECT/EXAMINE: the mailbox and the state its answer described,
	   kept at its completion (others may be answered before it is waited
	   for, when pipelined). */
	char *mailbox;
	gboolean readonly;
	struct imap_select_info sel;
};

struct imap_session {
	struct conn *conn;
	struct imap_parser *parser;
	char *peer;
	/* "imap#N": names this connection in the protocol log, where several
	   sessions to one peer interleave and reuse tags. */
	char *trace_name;
	guint32 caps;
	gboolean caps_known;
	guint caps_generation; /* bumped whenever the server states its capabilities */
	guint64 append_limit;  /* APPENDLIMIT=N (RFC 7889), 0: none stated */
	gboolean alive;
	gboolean timed_out; /* died because the server made no progress for the timeout */
	guint next_id;
	GHashTable *pending; /* id -> struct pending */
	GHashTable *tags;    /* tag -> id */
	guint64 commands;
	guint64 untagged; /* untagged responses seen, for IDLE */

	const struct imap_handler *handler; /* the reader's, during imap_wait() */

	/* parser callback state */
	struct imap_response *greeting;
	char *bad_greeting; /* what came instead of a greeting, escaped */
	gboolean got_continuation;
	char *continuation_text;
	const char *pause_tag; /* pause the parser right after this tagged response */
	enum { LIT_INLINE, LIT_HANDLER, LIT_DISCARD } lit_mode;
	gboolean warned_unsolicited;

	gboolean qresync; /* ENABLE QRESYNC answered by * ENABLED QRESYNC */

	guint64 completed; /* tagged completions read (imap_session_completed) */

	char *selected;
	/* The SELECT/EXAMINE whose answer is being read (0: none): its
	   response codes describe the mailbox. Servers answer pipelined
	   commands in order, so a SELECT's answer starts when the command sent
	   before it completes (at once when none is in flight), and until then
	   `sel` still describes the mailbox selected before. */
	guint selecting;
	/* Set while a SELECT is being sent: its pending entry is marked one. */
	const char *sending_select;
	gboolean sending_readonly;
	struct imap_select_info sel;
};

/* Sessions made by this process, for their trace names. */
static gint sessions_made;

static void trace_sent(struct imap_session *s, const char *line, gboolean redact)
{
	if (!mfs_log_enabled(MFS_LOG_IMAP))
		return;
	if (redact) {
		/* Keep the tag and the command word; the rest is a secret. */
		const char *sp1 = strchr(line, ' ');
		const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		int keep;

		/* "A3 AUTHENTICATE PLAIN ***": the mechanism is no secret. */
		if (sp2 && g_str_has_prefix(sp1 + 1, "AUTHENTICATE ") && strchr(sp2 + 1, ' '))
			sp2 = strchr(sp2 + 1, ' ');
		keep = sp2 ? (int)(sp2 - line) : (int)strcspn(line, "\r\n");

		mfs_log_debug(MFS_LOG_IMAP, "%s C: %.*s ***", s->trace_name, keep, line);
		return;
	}
	g_autofree char *esc = mfs_log_escape(line, strcspn(line, "\r\n"), TRACE_MAX);
	mfs_log_debug(MFS_LOG_IMAP, "%s C: %s", s->trace_name, esc);
}

static void describe_value(GString *out, const struct imap_value *v, int depth)
{
	switch (v->type) {
	case IMAP_V_ATOM:
		g_string_append_len(out, v->str, (gssize)MIN(v->len, 80));
		break;
	case IMAP_V_NIL:
		g_string_append(out, "NIL");
		break;
	case IMAP_V_STRING:
		if (v->len <= 64) {
			g_autofree char *esc = mfs_log_escape(v->str, v->len, 64);
			g_string_append_printf(out, "\"%s\"", esc);
		} else {
			g_string_append_printf(out, "{%zu bytes omitted}", v->len);
		}
		break;
	case IMAP_V_STREAMED:
		g_string_append_printf(out, "{%" G_GUINT64_FORMAT " bytes omitted}",
				       (guint64)v->literal_size);
		break;
	case IMAP_V_LIST:
		if (depth > 0)
			g_string_append_c(out, '(');
		for (size_t i = 0; i < v->n && out->len < TRACE_MAX; i++) {
			if (i)
				g_string_append_c(out, ' ');
			describe_value(out, &v->items[i], depth + 1);
		}
		if (depth > 0)
			g_string_append_c(out, ')');
		break;
	}
}

static void trace_received(struct imap_session *s, const struct imap_response *r)
{
	if (!mfs_log_enabled(MFS_LOG_IMAP))
		return;
	GString *out = g_string_new(NULL);

	if (r->type == IMAP_RESP_CONTINUATION) {
		g_string_append(out, "+ ...");
	} else {
		g_string_append(out, r->type == IMAP_RESP_TAGGED ? r->tag : "*");
		if (r->has_number)
			g_string_append_printf(out, " %u", r->number);
		if (r->keyword)
			g_string_append_printf(out, " %s", r->keyword);
		if (r->code)
			g_string_append_printf(out, " [%s%s%.*s]", r->code,
					       r->code_text && *r->code_text ? " " : "",
					       120, r->code_text ? r->code_text : "");
		if (r->text) {
			g_autofree char *esc = mfs_log_escape(r->text, strlen(r->text), 120);
			g_string_append_printf(out, " %s", esc);
		}
		if (r->args.n) {
			g_string_append_c(out, ' ');
			describe_value(out, &r->args, 0);
		}
	}
	g_autofree char *esc = mfs_log_escape(out->str, out->len, TRACE_MAX);
	mfs_log_debug(MFS_LOG_IMAP, "%s S: %s", s->trace_name, esc);
	g_string_free(out, TRUE);
}

void imap_result_clear(struct imap_result *r)
{
	if (!r)
		return;
	g_clear_pointer(&r->code, g_free);
	g_clear_pointer(&r->code_text, g_free);
	g_clear_pointer(&r->text, g_free);
	r->status = IMAP_STATUS_NONE;
}

static void pending_free(gpointer p)
{
	struct pending *pd = p;

	imap_result_clear(&pd->res);
	g_free(pd->mailbox);
	g_free(pd);
}

/* -- capabilities ----------------------------------------------------------- */

/* The bit of a capability the server sent, compared case-insensitively; 0 if unknown. */
static guint32 cap_bit(const char *name)
{
	static const struct {
		const char *name;
		guint32 bit;
	} table[] = {
		{ "IMAP4REV1", IMAP_CAP_IMAP4REV1 },
		{ "IMAP4REV2", IMAP_CAP_IMAP4REV2 },
		{ "STARTTLS", IMAP_CAP_STARTTLS },
		{ "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
		{ "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN },
		{ "AUTH=LOGIN", IMAP_CAP_AUTH_LOGIN },
		{ "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
		{ "AUTH=OAUTHBEARER", IMAP_CAP_AUTH_OAUTHBEARER },
		{ "SASL-IR", IMAP_CAP_SASL_IR },
		{ "LITERAL+", IMAP_CAP_LITERAL_PLUS },
		{ "LITERAL-", IMAP_CAP_LITERAL_MINUS },
		{ "UIDPLUS", IMAP_CAP_UIDPLUS },
		{ "MOVE", IMAP_CAP_MOVE },
		{ "CONDSTORE", IMAP_CAP_CONDSTORE },
		{ "QRESYNC", IMAP_CAP_QRESYNC },
		{ "IDLE", IMAP_CAP_IDLE },
		{ "ESEARCH", IMAP_CAP_ESEARCH },
		{ "SPECIAL-USE", IMAP_CAP_SPECIAL_USE },
		{ "LIST-STATUS", IMAP_CAP_LIST_STATUS },
		{ "LIST-EXTENDED", IMAP_CAP_LIST_EXTENDED },
		{ "ENABLE", IMAP_CAP_ENABLE },
		{ "ID", IMAP_CAP_ID },
		{ "NAMESPACE", IMAP_CAP_NAMESPACE },
		{ "QUOTA", IMAP_CAP_QUOTA },
		{ "UTF8=ACCEPT", IMAP_CAP_UTF8_ACCEPT },
		{ "X-GM-EXT-1", IMAP_CAP_X_GM_EXT_1 },
		{ "BINARY", IMAP_CAP_BINARY },
		{ "OBJECTID", IMAP_CAP_OBJECTID },
		{ "NOTIFY", IMAP_CAP_NOTIFY },
		{ "ESORT", IMAP_CAP_ESORT },
		{ "SEARCHRES", IMAP_CAP_SEARCHRES },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
		if (g_ascii_strcasecmp(name, table[i].name) == 0)
			return table[i].bit;
	return 0;
}

static void set_caps_from_values(struct imap_session *s, const struct imap_value *list)
{
	guint32 caps = 0;
	guint64 limit = 0;

	for (size_t i = 0; i < list->n; i++) {
		const char *name = imap_value_str(&list->items[i]);

		if (name)
			caps |= cap_bit(name);
		/* A bare APPENDLIMIT means the limit varies per mailbox: none known. */
		if (name && g_ascii_strncasecmp(name, "APPENDLIMIT=", 12) == 0 &&
		    !g_ascii_string_to_unsigned(name + 12, 10, 1, G_MAXUINT64, &limit, NULL))
			limit = 0;
	}
	s->caps = caps;
	s->append_limit = limit;
	s->caps_known = TRUE;
	s->caps_generation++;
}

/* -- parser callbacks ------------------------------------------------------- */

static gboolean is_body_section(const char *atom)
{
	return atom && (g_ascii_strncasecmp(atom, "BODY[", 5) == 0 ||
			g_ascii_strncasecmp(atom, "BINARY[", 7) == 0 ||
			g_ascii_strncasecmp(atom, "RFC822", 6) == 0);
}

static gboolean on_literal_begin(void *ud, const struct imap_literal_ctx *ctx, uint64_t size)
{
	struct imap_session *s = ud;
	const struct imap_handler *h = s->handler;
	gboolean fetch = ctx->resp->keyword && strcmp(ctx->resp->keyword, "FETCH") == 0;

	s->lit_mode = LIT_INLINE;
	if (fetch && h && h->literal_begin && ctx->depth == 1 &&
	    h->literal_begin(h->ud, ctx->resp->number, ctx->prev_atom ? ctx->prev_atom : "",
			     size)) {
		s->lit_mode = LIT_HANDLER;
		return TRUE;
	}
	if (fetch && ctx->depth == 1 && is_body_section(ctx->prev_atom) &&
	    size > UNSOLICITED_INLINE_MAX) {
		if (!s->warned_unsolicited) {
			mfs_log_info("%s sent a message body nobody asked for; dropped",
				     s->peer);
			s->warned_unsolicited = TRUE;
		}
		s->lit_mode = LIT_DISCARD;
		return TRUE;
	}
	return FALSE;
}

static void on_literal_chunk(void *ud, const void *data, size_t len)
{
	struct imap_session *s = ud;

	if (s->lit_mode == LIT_HANDLER && s->handler && s->handler->literal_chunk)
		s->handler->literal_chunk(s->handler->ud, data, len);
}

static void on_literal_end(void *ud)
{
	struct imap_session *s = ud;

	if (s->lit_mode == LIT_HANDLER && s->handler && s->handler->literal_end)
		s->handler->literal_end(s->handler->ud);
	s->lit_mode = LIT_INLINE;
}

/* SELECT/EXAMINE id's answer is the next one read: the mailbox selected
   before is left (RFC 3501 §6.3.1: even when this one fails). */
static void select_answer_starts(struct imap_session *s, guint id)
{
	g_clear_pointer(&s->selected, g_free);
	memset(&s->sel, 0, sizeof(s->sel));
	s->selecting = id;
}

/* SELECT/EXAMINE id (pd) completed: its mailbox is selected when ok, none
   is otherwise; pd keeps what its answer said for imap_select_finish. */
static void select_answered(struct imap_session *s, guint id, struct pending *pd, gboolean ok)
{
	if (s->selecting == id)
		s->selecting = 0;
	if (ok) {
		s->sel.readonly = pd->readonly;
		g_free(s->selected);
		s->selected = g_strdup(pd->mailbox);
	} else {
		memset(&s->sel, 0, sizeof(s->sel));
		g_clear_pointer(&s->selected, g_free);
	}
	pd->sel = s->sel;
}

static void apply_code(struct imap_session *s, const struct imap_response *r)
{
	if (!r->code)
		return;
	if (strcmp(r->code, "CAPABILITY") == 0 && r->code_args.type == IMAP_V_LIST) {
		set_caps_from_values(s, &r->code_args);
		return;
	}
	if (!s->selecting || r->code_args.type != IMAP_V_LIST || r->code_args.n < 1)
		return;
	if (strcmp(r->code, "UIDVALIDITY") == 0)
		imap_value_u32(&r->code_args.items[0], &s->sel.uidvalidity);
	else if (strcmp(r->code, "UIDNEXT") == 0)
		imap_value_u32(&r->code_args.items[0], &s->sel.uidnext);
	else if (strcmp(r->code, "HIGHESTMODSEQ") == 0)
		imap_value_u64(&r->code_args.items[0], &s->sel.highestmodseq);
}

/* "* VANISHED 4:7" is QRESYNC's EXPUNGE, by UID; "* VANISHED (EARLIER) ..."
   reports what went before this session looked and changes no count. */
static void apply_vanished(struct imap_session *s, const struct imap_response *r)
{
	const char *set;
	g_autoptr(GArray) ranges = NULL;

	if (r->args.n != 1 || r->args.items[0].type != IMAP_V_ATOM)
		return;
	set = imap_value_str(&r->args.items[0]);
	ranges = g_array_new(FALSE, FALSE, sizeof(struct uid_range));
	if (set && uidset_parse(set, G_MAXUINT32, VANISHED_RANGES_MAX, ranges))
		s->sel.exists -= (guint32)MIN(uidset_count(ranges), s->sel.exists);
}

static void apply_untagged(struct imap_session *s, const struct imap_response *r)
{
	if (!r->keyword)
		return;
	if (strcmp(r->keyword, "CAPABILITY") == 0) {
		set_caps_from_values(s, &r->args);
	} else if (strcmp(r->keyword, "EXISTS") == 0 && r->has_number) {
		s->sel.exists = r->number;
	} else if (strcmp(r->keyword, "EXPUNGE") == 0 && r->has_number) {
		if (s->sel.exists > 0)
			s->sel.exists--;
	} else if (strcmp(r->keyword, "VANISHED") == 0) {
		apply_vanished(s, r);
	} else if (strcmp(r->keyword, "ENABLED") == 0) {
		for (size_t i = 0; i < r->args.n; i++)
			if (g_strcmp0(imap_value_str(&r->args.items[i]), "QRESYNC") == 0)
				s->qresync = TRUE;
	} else if (strcmp(r->keyword, "BYE") == 0) {
		g_autofree char *esc = mfs_log_escape(r->text, strlen(r->text), 200);

		/* The connection ends after BYE; a LOGOUT expects it. */
		mfs_log_debug(MFS_LOG_IMAP, "%s says BYE: %s", s->peer, esc);
	}
	apply_code(s, r);
}

static gboolean take_greeting(struct imap_session *s, struct imap_response *r)
{
	if (r->type == IMAP_RESP_UNTAGGED &&
	    (r->status == IMAP_STATUS_OK || r->status == IMAP_STATUS_PREAUTH ||
	     r->status == IMAP_STATUS_BYE)) {
		apply_code(s, r);
		s->greeting = r;
		return TRUE;
	}
	/* RFC 3501 §7.1: the greeting is OK, PREAUTH or BYE; anything else
	   means this is not an IMAP server we can talk to. */
	const char *what = r->type == IMAP_RESP_CONTINUATION ? "+" :
			   r->type == IMAP_RESP_TAGGED	     ? r->tag :
			   r->keyword			     ? r->keyword :
							       "";
	g_autofree char *text = g_strdup_printf("%s %s", what, r->text ? r->text : "");
	s->bad_greeting = mfs_log_escape(text, strlen(text), 120);
	imap_parser_pause(s->parser);
	imap_response_free(r);
	return TRUE;
}

static void on_response(void *ud, struct imap_response *r)
{
	struct imap_session *s = ud;

	trace_received(s, r);
	if (!s->greeting && !s->bad_greeting && s->next_id == 1 && take_greeting(s, r))
		return;
	switch (r->type) {
	case IMAP_RESP_CONTINUATION:
		s->got_continuation = TRUE;
		g_free(s->continuation_text);
		s->continuation_text = g_strdup(r->text ? r->text : "");
		break;
	case IMAP_RESP_TAGGED: {
		gpointer idp = g_hash_table_lookup(s->tags, r->tag);
		struct pending *pd = idp ? g_hash_table_lookup(s->pending, idp) : NULL;

		apply_code(s, r);
		if (!pd) {
			g_autofree char *esc = mfs_log_escape(r->tag, strlen(r->tag), 40);

			mfs_log_warn("%s answered a command never sent (tag %s); ignored", s->peer,
				     esc);
			break;
		}
		pd->done = TRUE;
		s->completed++;
		if (pd->mailbox)
			select_answered(s, GPOINTER_TO_UINT(idp), pd, r->status == IMAP_STATUS_OK);
		{
			guint next_id = GPOINTER_TO_UINT(idp) + 1;
			struct pending *next = g_hash_table_lookup(s->pending,
								   GUINT_TO_POINTER(next_id));

			if (next && next->mailbox && !next->done)
				select_answer_starts(s, next_id);
		}
		pd->res.status = r->status;
		pd->res.code = g_strdup(r->code);
		pd->res.code_text = g_strdup(r->code_text);
		pd->res.text = mfs_log_escape(r->text ? r->text : "", r->text ? strlen(r->text) : 0,
					      300);
		g_hash_table_remove(s->tags, r->tag);
		if (s->pause_tag && strcmp(s->pause_tag, pd->tag) == 0)
			imap_parser_pause(s->parser);
		break;
	}
	case IMAP_RESP_UNTAGGED:
		s->untagged++;
		apply_untagged(s, r);
		if (s->handler && s->handler->untagged)
			s->handler->untagged(s->handler->ud, r);
		break;
	}
	imap_response_free(r);
}

/* -- reading ---------------------------------------------------------------- */

static int fail(struct imap_session *s, GError **err, GError *cause)
{
	int rc = -EIO;

	s->alive = FALSE;
	if (cause && g_error_matches(cause, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		rc = -EINTR;
	if (cause && g_error_matches(cause, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
		s->timed_out = TRUE;
	if (err && !*err && cause)
		*err = g_error_copy(cause);
	g_clear_error(&cause);
	return rc;
}

/* The session is dead: say so, unless an error already says why. */
static void set_closed(struct imap_session *s, GError **err)
{
	if (err && !*err)
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE, "connection to %s is closed",
			    s->peer);
}

/* Read and parse what the server sends next. 0 or a negative errno. */
static int pump(struct imap_session *s, GError **err)
{
	GError *e = NULL;
	size_t avail;
	const char *data;
	gssize used;

	if (!s->alive) {
		set_closed(s, err);
		return -EIO;
	}
	if (conn_buffered(s->conn) == 0 && !conn_fill(s->conn, &e))
		return fail(s, err, e);
	data = conn_peek(s->conn, &avail);
	used = imap_parser_feed(s->parser, data, avail, &e);
	if (used < 0) {
		/* The caller reports it: one error, one line. */
		g_prefix_error(&e, "%s: ", s->peer);
		return fail(s, err, e);
	}
	conn_consume(s->conn, (size_t)used);
	return 0;
}

/* -- sending ---------------------------------------------------------------- */

static guint register_cmd(struct imap_session *s, char *tag_out, size_t tag_size)
{
	guint id = s->next_id++;
	struct pending *pd = g_new0(struct pending, 1);

	g_snprintf(pd->tag, sizeof(pd->tag), "A%u", id);
	g_strlcpy(tag_out, pd->tag, tag_size);
	if (s->sending_select) {
		struct pending *before = g_hash_table_lookup(s->pending, GUINT_TO_POINTER(id - 1));

		pd->mailbox = g_strdup(s->sending_select);
		pd->readonly = s->sending_readonly;
		/* Nothing in flight before it: its answer is the next one. */
		if (!before || before->done)
			select_answer_starts(s, id);
	}
	g_hash_table_insert(s->pending, GUINT_TO_POINTER(id), pd);
	g_hash_table_insert(s->tags, g_strdup(pd->tag), GUINT_TO_POINTER(id));
	s->commands++;
	return id;
}

static void unregister_cmd(struct imap_session *s, guint id)
{
	struct pending *pd = g_hash_table_lookup(s->pending, GUINT_TO_POINTER(id));

	if (pd)
		g_hash_table_remove(s->tags, pd->tag);
	g_hash_table_remove(s->pending, GUINT_TO_POINTER(id));
}

static guint send_cmd(struct imap_session *s, gboolean redact, GError **err, const char *text)
{
	char tag[16];
	GError *e = NULL;
	guint id;

	if (!s->alive) {
		set_closed(s, err);
		return 0;
	}
	id = register_cmd(s, tag, sizeof(tag));
	g_autofree char *line = g_strdup_printf("%s %s\r\n", tag, text);
	trace_sent(s, line, redact);
	if (!conn_write_all(s->conn, line, strlen(line), &e)) {
		unregister_cmd(s, id);
		fail(s, err, e);
		return 0;
	}
	return id;
}

guint imap_send(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_autofree char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return send_cmd(s, FALSE, NULL, text);
}

/* Wait for a continuation request or the completion of id: 1, 0, or -errno. */
static int wait_continuation(struct imap_session *s, guint id, GError **err)
{
	s->got_continuation = FALSE;
	for (;;) {
		struct pending *pd = g_hash_table_lookup(s->pending, GUINT_TO_POINTER(id));
		int rc;

		if (s->got_continuation) {
			s->got_continuation = FALSE;
			return 1;
		}
		if (pd && pd->done)
			return 0;
		rc = pump(s, err);
		if (rc < 0)
			return rc;
	}
}

static int result_errno(const struct imap_result *res)
{
	enum errmap_imap_status st;

	switch (res->status) {
	case IMAP_STATUS_OK:
		return 0;
	case IMAP_STATUS_NO:
		st = ERRMAP_IMAP_NO;
		break;
	case IMAP_STATUS_BAD:
		st = ERRMAP_IMAP_BAD;
		break;
	default:
		st = ERRMAP_IMAP_BYE;
		break;
	}
	return -errmap_imap(st, res->code, NULL);
}

static int take_result(struct imap_session *s, guint id, struct imap_result *res, GError **err,
		       const char *what)
{
	struct pending *pd = g_hash_table_lookup(s->pending, GUINT_TO_POINTER(id));
	int rc = result_errno(&pd->res);

	if (rc < 0 && err && !*err)
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s failed: %s%s%s%s", s->peer,
			    what, pd->res.code ? "[" : "", pd->res.code ? pd->res.code : "",
			    pd->res.code ? "] " : "", pd->res.text);
	if (res) {
		*res = pd->res;
		memset(&pd->res, 0, sizeof(pd->res));
	}
	unregister_cmd(s, id);
	return rc;
}

/* Whether a literal of len bytes may go without waiting for a continuation. */
static gboolean literal_nonsync(const struct imap_session *s, gsize len)
{
	return imap_session_has(s, IMAP_CAP_LITERAL_PLUS) ||
	       (imap_session_has(s, IMAP_CAP_LITERAL_MINUS) && len <= 4096);
}

/* The trace line of a command sent in parts: literals shown, or only their size. */
static void trace_parts(struct imap_session *s, const char *head, const struct imap_part *parts,
			gsize n, gboolean show_literals)
{
	if (!mfs_log_enabled(MFS_LOG_IMAP))
		return;
	g_autoptr(GString) line = g_string_new(head);
	for (gsize i = 0; i < n && line->len < TRACE_MAX; i++) {
		if (!parts[i].literal)
			g_string_append_len(line, parts[i].data, (gssize)parts[i].len);
		else if (show_literals)
			g_string_append_printf(line, "{%" G_GSIZE_FORMAT "%s}\r\n%.*s", parts[i].len,
					       literal_nonsync(s, parts[i].len) ? "+" : "",
					       (int)MIN(parts[i].len, TRACE_MAX), parts[i].data);
		else
			g_string_append_printf(line, "{%" G_GSIZE_FORMAT "%s} {%" G_GSIZE_FORMAT
					       " bytes omitted}", parts[i].len,
					       literal_nonsync(s, parts[i].len) ? "+" : "", parts[i].len);
	}
	g_autofree char *esc = mfs_log_escape(line->str, line->len, TRACE_MAX);
	mfs_log_debug(MFS_LOG_IMAP, "%s C: %s", s->trace_name, esc);
}

/* Write what is queued in iov (struct iovec) and empty it. */
static gboolean flush_iov(struct imap_session *s, GArray *iov, GError **e)
{
	gboolean ok = conn_writev(s->conn, (const struct iovec *)(const void *)iov->data,
				  (int)iov->len, e);

	g_array_set_size(iov, 0);
	return ok;
}

static void queue_iov(GArray *iov, const void *data, gsize len)
{
	struct iovec v = {(void *)(uintptr_t)data, len};

	if (len)
		g_array_append_val(iov, v);
}

/* Writes are gathered up to this many pieces (sendmsg takes at most IOV_MAX). */
#define PARTS_IOV_BATCH 64

guint imap_send_parts(struct imap_session *s, const char *prefix, const struct imap_part *parts,
		      gsize n, gboolean show_literals, GError **err)
{
	g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GArray) iov = g_array_new(FALSE, FALSE, sizeof(struct iovec));
	GError *e = NULL;
	char tag[16];
	char *head;
	guint id;

	if (!s->alive) {
		set_closed(s, err);
		return 0;
	}
	id = register_cmd(s, tag, sizeof(tag));
	head = g_strdup_printf("%s %s", tag, prefix);
	g_ptr_array_add(owned, head);
	trace_parts(s, head, parts, n, show_literals);
	queue_iov(iov, head, strlen(head));
	for (gsize i = 0; i < n; i++) {
		const struct imap_part *p = &parts[i];
		gboolean sync = !literal_nonsync(s, p->len);
		char *lit;
		int rc;

		if (!p->literal) {
			queue_iov(iov, p->data, p->len);
			continue;
		}
		lit = g_strdup_printf("{%" G_GSIZE_FORMAT "%s}\r\n", p->len, sync ? "" : "+");
		g_ptr_array_add(owned, lit);
		queue_iov(iov, lit, strlen(lit));
		if (sync) {
			if (!flush_iov(s, iov, &e))
				goto write_failed;
			rc = wait_continuation(s, id, err);
			if (rc == 0) /* the server completed the command: a refusal */
				take_result(s, id, NULL, err, "literal");
			else if (rc < 0)
				unregister_cmd(s, id);
			if (rc <= 0)
				return 0;
		}
		queue_iov(iov, p->data, p->len);
		if (iov->len >= PARTS_IOV_BATCH && !flush_iov(s, iov, &e))
			goto write_failed;
	}
	queue_iov(iov, "\r\n", 2);
	if (!flush_iov(s, iov, &e))
		goto write_failed;
	return id;
write_failed:
	unregister_cmd(s, id);
	fail(s, err, e);
	return 0;
}

guint imap_send_literal(struct imap_session *s, const char *prefix, const void *data, size_t len,
			const char *suffix, GError **err)
{
	const struct imap_part parts[] = {
		{FALSE, " ", 1},
		{TRUE, data, len},
		{FALSE, suffix ? suffix : "", suffix ? strlen(suffix) : 0},
	};

	return imap_send_parts(s, prefix, parts, G_N_ELEMENTS(parts), FALSE, err);
}

/* imap_wait; sel (may be NULL) gets what a SELECT's answer said. */
static int wait_cmd(struct imap_session *s, guint id, const struct imap_handler *h,
		    struct imap_result *res, GError **err, struct imap_select_info *sel)
{
	const struct imap_handler *saved = s->handler;
	int rc = 0;

	if (id == 0) {
		set_closed(s, err);
		return -EIO;
	}
	s->handler = h;
	for (;;) {
		struct pending *pd = g_hash_table_lookup(s->pending, GUINT_TO_POINTER(id));

		if (!pd) {
			rc = -EINVAL;
			break;
		}
		if (pd->done) {
			if (sel)
				*sel = pd->sel;
			rc = take_result(s, id, res, err, "command");
			break;
		}
		rc = pump(s, err);
		if (rc < 0) {
			unregister_cmd(s, id);
			break;
		}
	}
	s->handler = saved;
	return rc;
}

int imap_wait(struct imap_session *s, guint id, const struct imap_handler *h,
	      struct imap_result *res, GError **err)
{
	return wait_cmd(s, id, h, res, err, NULL);
}

int imap_run(struct imap_session *s, const struct imap_handler *h, struct imap_result *res,
	     GError **err, const char *fmt, ...)
{
	va_list ap;
	guint id;

	va_start(ap, fmt);
	g_autofree char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	id = send_cmd(s, FALSE, err, text);
	if (id == 0)
		return -EIO;
	return imap_wait(s, id, h, res, err);
}

char *imap_quote(const char *str)
{
	GString *q = g_string_sized_new(strlen(str) + 2);

	g_string_append_c(q, '"');
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '\r' || *p == '\n' || *p >= 0x80) {
			g_string_free(q, TRUE);
			return NULL;
		}
		if (*p == '"' || *p == '\\')
			g_string_append_c(q, '\\');
		g_string_append_c(q, (char)*p);
	}
	g_string_append_c(q, '"');
	return g_string_free(q, FALSE);
}

/* -- connect and log in ----------------------------------------------------- */

static int run_simple(struct imap_session *s, GError **err, const char *what, const char *text)
{
	guint id = send_cmd(s, FALSE, err, text);

	if (!id)
		return -EIO;
	int rc = imap_wait(s, id, NULL, NULL, err);
	if (rc < 0)
		g_prefix_error(err, "%s: ", what);
	return rc;
}

static gboolean starttls(struct imap_session *s, const struct imap_session_opts *o,
			 const struct conn_tls_opts *tls, GError **err)
{
	guint id;
	int rc;

	if (!s->caps_known && run_simple(s, err, "CAPABILITY", "CAPABILITY") < 0)
		return FALSE;
	if (!(s->caps & IMAP_CAP_STARTTLS)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			    "%s does not offer STARTTLS; refusing to log in over an unencrypted "
			    "link (use imaps://, or tls=none if you really mean it)",
			    s->peer);
		return FALSE;
	}
	id = send_cmd(s, FALSE, err, "STARTTLS");
	if (!id)
		return FALSE;
	s->pause_tag = ((struct pending *)g_hash_table_lookup(s->pending, GUINT_TO_POINTER(id)))->tag;
	rc = imap_wait(s, id, NULL, NULL, err);
	s->pause_tag = NULL;
	if (rc < 0) {
		g_prefix_error(err, "STARTTLS: ");
		return FALSE;
	}
	/* Anything the server sent after its OK arrived in clear text and would be
	   read as if it came over TLS: response injection (CVE-2020-14954). */
	if (conn_buffered(s->conn) > 0 || imap_parser_in_response(s->parser)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s sent data after its OK to STARTTLS, before the TLS handshake "
			    "(response injection?); refusing the connection",
			    s->peer);
		s->alive = FALSE;
		return FALSE;
	}
	if (!conn_start_tls(s->conn, o->host, tls, err))
		return FALSE;
	/* Capabilities from before TLS may have been forged: ask again. */
	s->caps = 0;
	s->caps_known = FALSE;
	return run_simple(s, err, "CAPABILITY", "CAPABILITY") == 0;
}

/* An AUTHENTICATE exchange: initial response, then answer any challenge with `on_challenge`. */
static int sasl(struct imap_session *s, const char *mech, const char *initial_b64,
		const char *on_challenge, struct imap_result *res, GError **err)
{
	guint id;
	int rc;

	if (s->caps & IMAP_CAP_SASL_IR) {
		g_autofree char *cmd = g_strdup_printf("AUTHENTICATE %s %s", mech,
						       *initial_b64 ? initial_b64 : "=");
		id = send_cmd(s, TRUE, err, cmd);
		if (!id)
			return -EIO;
	} else {
		g_autofree char *cmd = g_strdup_printf("AUTHENTICATE %s", mech);
		GError *e = NULL;

		id = send_cmd(s, FALSE, err, cmd);
		if (!id)
			return -EIO;
		rc = wait_continuation(s, id, err);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			g_autofree char *line = g_strdup_printf("%s\r\n", initial_b64);

			mfs_log_debug(MFS_LOG_IMAP, "%s C: ***", s->trace_name);
			if (!conn_write_all(s->conn, line, strlen(line), &e))
				return fail(s, err, e);
		}
	}
	for (;;) {
		GError *e = NULL;

		rc = wait_continuation(s, id, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		/* A challenge after the credentials is an error report (XOAUTH2,
		   OAUTHBEARER): answer so that the server sends its NO. */
		g_autofree char *line = g_strdup_printf("%s\r\n", on_challenge);
		mfs_log_debug(MFS_LOG_IMAP, "%s C: %s", s->trace_name, on_challenge);
		if (!conn_write_all(s->conn, line, strlen(line), &e))
			return fail(s, err, e);
	}
	return take_result(s, id, res, NULL, "AUTHENTICATE");
}

static char *b64(const char *data, size_t len)
{
	return g_base64_encode((const guchar *)data, len);
}

static int authenticate(struct imap_session *s, const struct imap_session_opts *o,
			const char *secret, struct imap_result *res, GError **err)
{
	enum imap_auth_mech mech = o->auth;
	const char *user = o->user;

	if (mech == IMAP_AUTH_BEST) {
		if (o->oauth)
			mech = (s->caps & IMAP_CAP_AUTH_OAUTHBEARER) &&
					       !(s->caps & IMAP_CAP_AUTH_XOAUTH2) ?
				       IMAP_AUTH_OAUTHBEARER :
				       IMAP_AUTH_XOAUTH2;
		else if (s->caps & IMAP_CAP_AUTH_PLAIN)
			mech = IMAP_AUTH_PLAIN;
		else
			mech = IMAP_AUTH_LOGIN;
	}
	switch (mech) {
	case IMAP_AUTH_PLAIN: {
		GString *msg = g_string_new(NULL);
		int rc;

		if (!(s->caps & IMAP_CAP_AUTH_PLAIN)) {
			g_string_free(msg, TRUE);
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
				    "%s does not offer AUTH=PLAIN", s->peer);
			return -EOPNOTSUPP;
		}
		g_string_append_c(msg, '\0');
		g_string_append(msg, user);
		g_string_append_c(msg, '\0');
		g_string_append(msg, secret);
		char *enc = b64(msg->str, msg->len);
		secret_free(g_string_free(msg, FALSE));
		rc = sasl(s, "PLAIN", enc, "*", res, err);
		secret_free(enc);
		return rc;
	}
	case IMAP_AUTH_XOAUTH2:
	case IMAP_AUTH_OAUTHBEARER: {
		gboolean xo = mech == IMAP_AUTH_XOAUTH2;
		char *raw, *enc;
		int rc;

		if (!(s->caps & (xo ? IMAP_CAP_AUTH_XOAUTH2 : IMAP_CAP_AUTH_OAUTHBEARER))) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
				    "%s does not offer AUTH=%s", s->peer,
				    xo ? "XOAUTH2" : "OAUTHBEARER");
			return -EOPNOTSUPP;
		}
		if (xo)
			raw = g_strdup_printf("user=%s\001auth=Bearer %s\001\001", user, secret);
		else
			raw = g_strdup_printf("n,a=%s,\001host=%s\001port=%s\001auth=Bearer %s\001\001",
					      user, o->host, o->port, secret);
		enc = b64(raw, strlen(raw));
		secret_free(raw);
		/* RFC 7628 §3.2.3: the client answers an error challenge with %x01;
		   XOAUTH2 expects an empty line. */
		rc = sasl(s, xo ? "XOAUTH2" : "OAUTHBEARER", enc, xo ? "" : "AQ==", res, err);
		secret_free(enc);
		return rc;
	}
	case IMAP_AUTH_LOGIN:
	case IMAP_AUTH_BEST:
	default: {
		g_autofree char *quser = imap_quote(user);
		char *qpass = imap_quote(secret);
		guint id;

		if (s->caps & IMAP_CAP_LOGINDISABLED) {
			secret_free(qpass);
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
				    "%s does not allow LOGIN (LOGINDISABLED) and offers no "
				    "AUTHENTICATE mechanism mailfs knows",
				    s->peer);
			return -EOPNOTSUPP;
		}
		if (!quser) {
			secret_free(qpass);
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "user name cannot be sent with LOGIN; use auth=plain");
			return -EINVAL;
		}
		if (qpass) {
			char *cmd = g_strdup_printf("LOGIN %s %s", quser, qpass);

			id = send_cmd(s, TRUE, err, cmd);
			secret_free(cmd);
		} else {
			g_autofree char *prefix = g_strdup_printf("LOGIN %s", quser);

			id = imap_send_literal(s, prefix, secret, strlen(secret), NULL, err);
		}
		secret_free(qpass);
		if (!id)
			return -EIO;
		return imap_wait(s, id, NULL, res, NULL);
	}
	}
}

static gboolean login(struct imap_session *s, const struct imap_session_opts *o, GError **err)
{
	struct imap_result res = { 0 };
	char *secret;
	guint generation;
	int rc;

	if (!s->caps_known && run_simple(s, err, "CAPABILITY", "CAPABILITY") < 0)
		return FALSE;
	if (!o->secret) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "no password source for %s", o->user);
		return FALSE;
	}
	secret = o->secret(o->secret_ud, o->oauth, err);
	if (!secret)
		return FALSE;
	generation = s->caps_generation;
	rc = authenticate(s, o, secret, &res, err);
	secret_free(secret);
	if (rc < 0 && res.status == IMAP_STATUS_NONE && err && !*err) {
		/* No answer at all: the link, not the server, said no (an
		   unmount or an interrupt abandoned the connect, or it broke). */
		if (rc == -EINTR)
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED,
				    "login to %s abandoned", s->peer);
		else
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
				    "connection to %s lost during the login", s->peer);
	}
	if (rc < 0) {
		if (err && !*err)
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
				    "%s refused the login of %s: %s%s%s%s", s->peer, o->user,
				    res.code ? "[" : "", res.code ? res.code : "",
				    res.code ? "] " : "",
				    res.text && *res.text ? res.text : "(no reason given)");
		imap_result_clear(&res);
		return FALSE;
	}
	imap_result_clear(&res);
	/* Login changes what the server offers. The OK usually carries
	   [CAPABILITY ...]; otherwise ask. */
	if (s->caps_generation == generation &&
	    run_simple(s, err, "CAPABILITY", "CAPABILITY") < 0)
		return FALSE;
	return TRUE;
}

/* Wait for command id, whose refusal is no failure; an abort of the session
   (an interrupt, a shutdown) goes to *aborted, unless one is there already. */
static void wait_keeping_abort(struct imap_session *s, guint id, GError **aborted)
{
	GError *e = NULL;

	imap_wait(s, id, NULL, NULL, &e);
	if (e && !*aborted && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		*aborted = g_steal_pointer(&e);
	g_clear_error(&e);
}

/*
 * ID (some providers, Google, ask clients to identify themselves) and
 * ENABLE QRESYNC (RFC 7162), pipelined: one round trip. QRESYNC only counts
 * when the server answers * ENABLED QRESYNC; a refusal of either is no
 * failure, a closed connection is.
 */
static gboolean after_login(struct imap_session *s, GError **err)
{
	guint id_cmd = 0, enable_cmd = 0;
	GError *aborted = NULL;

	if (s->caps & IMAP_CAP_ID) {
		g_autofree char *id = g_strdup_printf(
			"ID (\"name\" \"mailfs\" \"version\" \"%s\")", MAILFS_VERSION);

		id_cmd = send_cmd(s, FALSE, NULL, id);
	}
	if ((s->caps & IMAP_CAP_QRESYNC) && (s->caps & IMAP_CAP_ENABLE) && s->alive)
		enable_cmd = send_cmd(s, FALSE, NULL, "ENABLE QRESYNC");
	if (id_cmd)
		wait_keeping_abort(s, id_cmd, &aborted);
	if (enable_cmd)
		wait_keeping_abort(s, enable_cmd, &aborted);
	if (aborted) {
		/* Interrupted or shut down: nothing the server did. */
		g_propagate_error(err, aborted);
		return FALSE;
	}
	if (!s->alive) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
			    "%s closed the connection after login", s->peer);
		return FALSE;
	}
	return TRUE;
}

/*
 * A POP3 server greets "+OK" or "-ERR" where an IMAP server says "* OK":
 * the wrong scheme for the port, which "invalid greeting" would not say.
 */
static gboolean not_pop3(struct imap_session *s, const struct imap_session_opts *o,
			 GError **err)
{
	size_t n;
	const char *p = conn_peek(s->conn, &n);
	const char *nl = memchr(p, '\n', n);
	size_t len = nl ? (size_t)(nl - p) : n;
	g_autofree char *shown = NULL;

	if (!(n >= 3 && g_ascii_strncasecmp(p, "+OK", 3) == 0) &&
	    !(n >= 4 && g_ascii_strncasecmp(p, "-ERR", 4) == 0))
		return TRUE;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	shown = mfs_log_escape(p, len, 80);
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
		    "%s is a POP3 server, not IMAP (it greeted \"%s\"): for POP3, use %s",
		    s->peer, shown,
		    o->tls == IMAP_TLS_IMPLICIT ? "pop3s://" :
		    o->tls == IMAP_TLS_STARTTLS ? "pop3://" :
						  "pop3:// with tls=none");
	return FALSE;
}

struct imap_session *imap_session_connect(const struct imap_session_opts *o, GError **err)
{
	static const struct imap_parser_callbacks cb = {
		.response = on_response,
		.literal_begin = on_literal_begin,
		.literal_chunk = on_literal_chunk,
		.literal_end = on_literal_end,
	};
	struct conn_tls_opts tls = { .ca_file = o->ca_file, .fingerprint = o->tls_fingerprint };
	struct imap_session *s;
	struct conn *c;

	c = conn_connect(o->host, o->port, o->timeout_s, o->cancel, err);
	if (!c)
		return NULL;
	s = g_new0(struct imap_session, 1);
	s->conn = c;
	s->peer = g_strdup(conn_peer_name(c));
	s->trace_name = g_strdup_printf("imap#%u", g_atomic_int_add(&sessions_made, 1) + 1);
	mfs_log_debug(MFS_LOG_IMAP, "%s connected to %s", s->trace_name, s->peer);
	s->alive = TRUE;
	s->next_id = 1;
	s->pending = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, pending_free);
	s->tags = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	s->parser = imap_parser_new(o->limits, &cb, s);

	if (o->tls == IMAP_TLS_IMPLICIT && !conn_start_tls(c, o->host, &tls, err))
		goto fail;
	if (o->tls == IMAP_TLS_NONE)
		mfs_log_warn("tls=none: the password and all mail travel unencrypted to %s",
			     s->peer);
	if (!conn_await_greeting(c, "if this is one, use imaps:// (tls=implicit)", err) ||
	    !not_pop3(s, o, err))
		goto fail;
	while (!s->greeting && !s->bad_greeting) {
		GError *e = NULL;

		if (pump(s, &e) < 0) {
			/* Garbage instead of a greeting: not an IMAP server. */
			if (e->domain == IMAP_PARSE_ERROR)
				g_prefix_error(&e, "invalid IMAP greeting from ");
			g_propagate_error(err, e);
			goto fail;
		}
	}
	if (s->bad_greeting) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s sent an invalid IMAP greeting: %s", s->peer, s->bad_greeting);
		goto fail;
	}
	if (s->greeting->status == IMAP_STATUS_BYE) {
		g_autofree char *esc = mfs_log_escape(s->greeting->text, strlen(s->greeting->text),
						      200);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED,
			    "%s refused the connection: %s", s->peer, esc);
		goto fail;
	}
	if (s->greeting->status == IMAP_STATUS_PREAUTH && o->tls == IMAP_TLS_STARTTLS) {
		/* CVE-2020-14093: a PREAUTH greeting skips STARTTLS entirely. */
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "%s greeted with PREAUTH on a link that must be encrypted with "
			    "STARTTLS; refusing the connection",
			    s->peer);
		goto fail;
	}
	if (o->tls == IMAP_TLS_STARTTLS && !starttls(s, o, &tls, err))
		goto fail;
	if (s->greeting->status != IMAP_STATUS_PREAUTH && !login(s, o, err))
		goto fail;
	if (!s->caps_known && run_simple(s, err, "CAPABILITY", "CAPABILITY") < 0)
		goto fail;
	if (!after_login(s, err))
		goto fail;
	conn_forget_cancel(c);
	return s;
fail:
	imap_session_free(s);
	return NULL;
}

void imap_session_free(struct imap_session *s)
{
	if (!s)
		return;
	conn_free(s->conn);
	imap_parser_free(s->parser);
	if (s->greeting)
		imap_response_free(s->greeting);
	g_hash_table_destroy(s->pending);
	g_hash_table_destroy(s->tags);
	g_free(s->continuation_text);
	g_free(s->bad_greeting);
	g_free(s->selected);
	g_free(s->trace_name);
	g_free(s->peer);
	g_free(s);
}

void imap_session_close(struct imap_session *s)
{
	if (!s)
		return;
	if (s->alive) {
		/* A short bound: unmount must not wait for a slow server. */
		conn_set_timeout(s->conn, 5);
		run_simple(s, NULL, "LOGOUT", "LOGOUT");
	}
	imap_session_free(s);
}

gboolean imap_session_alive(const struct imap_session *s)
{
	return s->alive;
}

gboolean imap_session_timed_out(const struct imap_session *s)
{
	return s->timed_out;
}

guint32 imap_session_caps(const struct imap_session *s)
{
	return s->caps;
}

gboolean imap_session_has(const struct imap_session *s, enum imap_cap cap)
{
	return (s->caps & cap) != 0;
}

const char *imap_session_peer(const struct imap_session *s)
{
	return s->peer;
}

void imap_session_abort(struct imap_session *s)
{
	conn_abort(s->conn);
}

guint64 imap_session_completed(const struct imap_session *s)
{
	return s->completed;
}

guint64 imap_session_commands_sent(const struct imap_session *s)
{
	return s->commands;
}

/* -- mailboxes (LIST: imap_list.c) ------------------------------------------ */

int imap_select(struct imap_session *s, const char *mailbox, gboolean readonly,
		struct imap_select_info *info, GError **err)
{
	return imap_select_resync(s, mailbox, readonly, NULL, NULL, info, err);
}

gboolean imap_session_qresync(const struct imap_session *s)
{
	return s->qresync;
}

guint imap_select_send(struct imap_session *s, const char *mailbox, gboolean readonly,
		       const struct imap_known_state *known, GError **err)
{
	const char *verb = readonly ? "EXAMINE" : "SELECT";
	g_autofree char *q = imap_quote(mailbox);
	g_autofree char *param = NULL;

	guint id;

	if (s->qresync && known && known->uidvalidity && known->highestmodseq)
		param = g_strdup_printf(" (QRESYNC (%u %" G_GUINT64_FORMAT "))", known->uidvalidity,
					known->highestmodseq);
	else if (s->caps & IMAP_CAP_CONDSTORE)
		param = g_strdup(" (CONDSTORE)");
	s->sending_select = mailbox;
	s->sending_readonly = readonly;
	if (q) {
		g_autofree char *cmd = g_strdup_printf("%s %s%s", verb, q, param ? param : "");

		id = send_cmd(s, FALSE, err, cmd);
	} else {
		/* CR, LF or 8-bit bytes in a name the server listed (as a
		   literal): it goes back the same way. */
		id = imap_send_literal(s, verb, mailbox, strlen(mailbox), param, err);
	}
	s->sending_select = NULL;
	return id;
}

int imap_select_finish(struct imap_session *s, guint id, const char *mailbox, gboolean readonly,
		       const struct imap_handler *h, struct imap_select_info *info, GError **err)
{
	struct imap_select_info sel = { 0 };
	int rc;

	/* The session tracks which mailbox each SELECT was for. */
	(void)mailbox;
	(void)readonly;
	if (id == 0)
		return -EIO; /* not sent: imap_select_send said why */
	rc = wait_cmd(s, id, h, NULL, err, &sel);
	if (rc < 0)
		return rc;
	if (info)
		*info = sel;
	return 0;
}

int imap_select_resync(struct imap_session *s, const char *mailbox, gboolean readonly,
		       const struct imap_known_state *known, const struct imap_handler *h,
		       struct imap_select_info *info, GError **err)
{
	guint id = imap_select_send(s, mailbox, readonly, known, err);

	return imap_select_finish(s, id, mailbox, readonly, h, info, err);
}

const char *imap_session_selected(const struct imap_session *s)
{
	return s->selected;
}

const struct imap_select_info *imap_session_select_info(const struct imap_session *s)
{
	return &s->sel;
}

int imap_idle(struct imap_session *s, int seconds, const struct imap_handler *h, GError **err)
{
	const struct imap_handler *saved = s->handler;
	gint64 deadline = g_get_monotonic_time() + (gint64)seconds * G_USEC_PER_SEC;
	GError *e = NULL;
	guint id;
	int rc, got = 0;

	if (!(s->caps & IMAP_CAP_IDLE)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "%s does not offer IDLE",
			    s->peer);
		return -EOPNOTSUPP;
	}
	guint64 start = s->untagged;

	id = send_cmd(s, FALSE, err, "IDLE");
	if (!id)
		return -EIO;
	s->handler = h;
	rc = wait_continuation(s, id, err);
	if (rc < 0) {
		s->handler = saved;
		unregister_cmd(s, id);
		return rc;
	}
	if (rc == 0) {
		/* Refused at once (NO/BAD): report it as the command's result. */
		s->handler = saved;
		rc = take_result(s, id, NULL, err, "IDLE");
		return rc < 0 ? rc : -EIO;
	}
	while (rc > 0) {
		gint64 left = deadline - g_get_monotonic_time();
		guint64 before = s->untagged;
		int r;

		/* News that came in one read with the continuation is parsed
		   already, or buffered: waiting on the socket would miss it
		   until the next event or the renewal. */
		if (s->untagged > start) {
			got = 1;
			break;
		}
		if (left <= 0)
			break;
		if (conn_buffered(s->conn) == 0) {
			r = conn_wait_readable(s->conn, (int)MIN(left / 1000 + 1, G_MAXINT), &e);
			if (r < 0) {
				s->handler = saved;
				unregister_cmd(s, id);
				return fail(s, err, e);
			}
			if (r == 0)
				break;
		}
		if (pump(s, err) < 0) {
			s->handler = saved;
			unregister_cmd(s, id);
			return -EIO;
		}
		if (s->untagged > before)
			got = 1;
		if (got)
			break;
	}
	/* RFC 2177: DONE ends the IDLE; its tagged OK proves the link alive. */
	mfs_log_debug(MFS_LOG_IMAP, "%s C: DONE", s->trace_name);
	if (!conn_write_all(s->conn, "DONE\r\n", 6, &e)) {
		s->handler = saved;
		unregister_cmd(s, id);
		return fail(s, err, e);
	}
	rc = imap_wait(s, id, h, NULL, err);
	s->handler = saved;
	/* News may also come with the continuation or before DONE's OK. */
	return rc < 0 ? rc : (got || s->untagged > start);
}

guint64 imap_session_append_limit(const struct imap_session *s)
{
	return s->append_limit;
}
