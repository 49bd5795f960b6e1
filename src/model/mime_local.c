/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_local: the structure and sections of message bytes, the way an
 * IMAP server (dovecot's message parser, RFC 3501 §6.4.5) cuts them.
 *
 * The cutting is done here rather than by GMimeParser: a section must be
 * the server's bytes exactly, and GMime's objects keep no offsets of
 * multipart or message parts. It reads the message once, front to back,
 * with the boundaries of the multiparts around the current entity on a
 * stack, as dovecot does (checked byte for byte against dovecot 2.3):
 *   - a line starting "--BOUNDARY" (a prefix match) is a boundary, the
 *     innermost multipart's first; "--BOUNDARY--" closes that multipart,
 *     whose epilogue then runs to a boundary of one around it;
 *   - a boundary of an outer multipart ends every entity inside it, closed
 *     or not; without one, an entity runs to the end of the message;
 *   - the line end before a boundary line is the boundary's (a closing
 *     boundary's own line end is not), and so is the line end of a header's
 *     empty line when a boundary follows it at once;
 *   - a message/rfc822 part's body is read as a message whatever its
 *     Content-Transfer-Encoding; a part without Content-Type is text/plain
 *     (message/rfc822 in a multipart/digest).
 * The values of the header fields are kept as a server keeps them for
 * BODYSTRUCTURE: raw (protocol/imap_bodystructure.h), decoded by the model.
 *
 * Every scan is bounded by the buffer and by a field length; nesting is
 * bounded by MIME_DEPTH_MAX (recursion at most that deep) and the number
 * of parts by MIME_PARTS_MAX.
 */
#include "model/mime_local.h"

#include <string.h>

/* Bytes of one header field value looked at (unfolded). */
#define FIELD_MAX (64 * 1024)
/* Parameters kept of one Content-Type or Content-Disposition. */
#define PARAMS_MAX 128

/* Where an entity's pieces are in the buffer. */
struct span {
	gsize hdr;  /* its header (MIME header, or a message's header) */
	gsize body; /* its body: after the empty line ending the header */
	gsize end;
};

struct builder {
	const guint8 *d;
	gsize len;
	struct mime_structure *s;
	/* section -> struct span *: parts (the first of a number wins, so a
	   message/rfc822 part before its multipart body) */
	GHashTable *parts;
	/* message section ("" or a message/rfc822 part's) -> struct span *:
	   the message, header to end */
	GHashTable *messages;
	/* the boundaries of the multiparts around the entity being read,
	   outermost first (each points into its part's params) */
	const char *stack[MIME_DEPTH_MAX + 1];
	gsize stack_len[MIME_DEPTH_MAX + 1];
	struct span last; /* where the entity parse_entity read last is */
};

struct fields {
	char *content_type, *encoding, *disposition, *id, *description;
};

static void fields_clear(struct fields *f)
{
	g_free(f->content_type);
	g_free(f->encoding);
	g_free(f->disposition);
	g_free(f->id);
	g_free(f->description);
}

/* The end of the line starting at i (after its LF, or end). */
static gsize line_next(const guint8 *d, gsize i, gsize end)
{
	const guint8 *lf = memchr(d + i, '\n', end - i);

	return lf ? (gsize)(lf - d) + 1 : end;
}

/* Whether the line starting at i is empty (CRLF, LF, or a lone CR at end). */
static gboolean line_empty(const guint8 *d, gsize i, gsize end)
{
	if (i < end && d[i] == '\n')
		return TRUE;
	return i + 1 < end && d[i] == '\r' && d[i + 1] == '\n';
}

static char **field_slot(struct fields *f, const guint8 *name, gsize n)
{
	static const struct {
		const char *name;
		gsize off;
	} known[] = {
		{ "content-type", G_STRUCT_OFFSET(struct fields, content_type) },
		{ "content-transfer-encoding", G_STRUCT_OFFSET(struct fields, encoding) },
		{ "content-disposition", G_STRUCT_OFFSET(struct fields, disposition) },
		{ "content-id", G_STRUCT_OFFSET(struct fields, id) },
		{ "content-description", G_STRUCT_OFFSET(struct fields, description) },
	};

	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	for (gsize k = 0; k < G_N_ELEMENTS(known); k++) {
		if (strlen(known[k].name) == n &&
		    g_ascii_strncasecmp((const char *)name, known[k].name, n) == 0)
			return G_STRUCT_MEMBER_P(f, known[k].off);
	}
	return NULL;
}

/* The MIME fields of the header at [start, stop): unfolded, trimmed, the
   first occurrence of each, NUL bytes dropped, at most FIELD_MAX bytes. */
static void read_fields(const guint8 *d, gsize start, gsize stop, struct fields *f)
{
	GString *val = NULL;
	char **slot = NULL;
	gsize i = start;

	memset(f, 0, sizeof(*f));
	while (i < stop) {
		gsize next = line_next(d, i, stop);
		gsize e = next;

		while (e > i && (d[e - 1] == '\n' || d[e - 1] == '\r'))
			e--;
		if (slot && (d[i] == ' ' || d[i] == '\t')) {
			/* continuation of the field being read */
		} else {
			if (slot && !*slot)
				*slot = g_strstrip(g_string_free(val, FALSE));
			else if (val)
				g_string_free(val, TRUE);
			val = NULL;
			slot = NULL;
			const guint8 *colon = memchr(d + i, ':', e - i);

			if (colon) {
				slot = field_slot(f, d + i, (gsize)(colon - (d + i)));
				if (slot && *slot)
					slot = NULL; /* the first one wins */
				if (slot) {
					val = g_string_new(NULL);
					i = (gsize)(colon - d) + 1;
				}
			}
		}
		if (slot) {
			for (gsize k = i; k < e && val->len < FIELD_MAX; k++) {
				if (d[k] != '\0')
					g_string_append_c(val, (char)d[k]);
			}
		}
		i = next;
	}
	if (slot && !*slot)
		*slot = g_strstrip(g_string_free(val, FALSE));
	else if (val)
		g_string_free(val, TRUE);
}

static gboolean is_tspecial_or_space(char c)
{
	return c == ';' || c == '=' || c == '"' || c == ' ' || c == '\t' || c == '/';
}

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A token at p (up to a tspecial or space); *out new or NULL when empty. */
static const char *read_token(const char *p, char **out)
{
	const char *q = p;

	while (*q && !is_tspecial_or_space(*q))
		q++;
	*out = q > p ? g_strndup(p, (gsize)(q - p)) : NULL;
	return q;
}

static void param_add(GPtrArray *params, char *name, char *value)
{
	struct mime_param *mp;

	if (params->len >= PARAMS_MAX || mime_param_get(params, name)) {
		g_free(name);
		g_free(value);
		return;
	}
	mp = g_new(struct mime_param, 1);
	mp->name = name;
	mp->value = value;
	g_ptr_array_add(params, mp);
}

/* "; name=value; name=\"quoted\"" into params: names as written, values
   unquoted. A malformed parameter is skipped to the next ';'. */
static void read_params(const char *p, GPtrArray *params)
{
	while (*p) {
		char *name = NULL;
		GString *value;

		p = skip_space(p);
		if (*p != ';') {
			const char *semi = strchr(p, ';');

			if (!semi)
				return;
			p = semi;
		}
		p = skip_space(p + 1);
		p = read_token(p, &name);
		p = skip_space(p);
		if (!name || *p != '=') {
			g_free(name);
			continue;
		}
		p = skip_space(p + 1);
		value = g_string_new(NULL);
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				g_string_append_c(value, *p);
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ';' && *p != ' ' && *p != '\t')
				g_string_append_c(value, *p++);
		}
		param_add(params, name, g_string_free(value, FALSE));
	}
}

/* type/subtype and its parameters from a Content-Type value; FALSE (and
   nothing set) when it is not "token/token". */
static gboolean read_content_type(const char *v, char **type, char **subtype, GPtrArray *params)
{
	const char *p = skip_space(v);

	p = read_token(p, type);
	p = skip_space(p);
	if (!*type || *p != '/') {
		g_clear_pointer(type, g_free);
		return FALSE;
	}
	p = read_token(skip_space(p + 1), subtype);
	if (!*subtype) {
		g_clear_pointer(type, g_free);
		return FALSE;
	}
	read_params(p, params);
	return TRUE;
}

static struct span *span_new(gsize hdr, gsize body, gsize end)
{
	struct span *sp = g_new(struct span, 1);

	sp->hdr = hdr;
	sp->body = body;
	sp->end = end;
	return sp;
}

static char *child_section(const char *prefix, guint n)
{
	return *prefix ? g_strdup_printf("%s.%u", prefix, n) : g_strdup_printf("%u", n);
}

/* Where the scan of an entity stopped: at the line of a boundary of one of
   the multiparts around it, or at the end of the message. */
struct stop {
	gsize from;  /* where the scan started */
	gsize line;  /* where the boundary line starts, or the message's length */
	int level;   /* its multipart in the boundary stack, -1: the end */
	gboolean close;
};

static struct mime_part *parse_message(struct builder *b, gsize start, const char *prefix,
				       guint depth, guint nstack, struct stop *stop);
static struct mime_part *parse_entity(struct builder *b, gsize start, const char *section,
				      const char *msg_prefix, gboolean in_digest, guint depth,
				      guint nstack, struct stop *stop);

/* Whether the line at i is "--boundary" (a prefix match, as servers do);
   *close when it is "--boundary--". */
static gboolean is_boundary(const guint8 *d, gsize i, gsize end, const char *bnd, gsize blen,
			    gboolean *close)
{
	if (end - i < 2 + blen || d[i] != '-' || d[i + 1] != '-' ||
	    memcmp(d + i + 2, bnd, blen) != 0)
		return FALSE;
	*close = end - i >= 4 + blen && d[i + 2 + blen] == '-' && d[i + 3 + blen] == '-';
	return TRUE;
}

/* Whether the line at i is a boundary of one of the nstack multiparts of
   the stack (*stop: which), the innermost first, as dovecot looks: a line
   that starts with both an inner and an outer boundary is the inner's. */
static gboolean at_boundary(const struct builder *b, gsize i, guint nstack, struct stop *stop)
{
	if (b->len - i < 2 || b->d[i] != '-' || b->d[i + 1] != '-')
		return FALSE;
	for (guint k = nstack; k > 0; k--) {
		if (is_boundary(b->d, i, b->len, b->stack[k - 1], b->stack_len[k - 1],
				&stop->close)) {
			stop->line = i;
			stop->level = (int)k - 1;
			return TRUE;
		}
	}
	return FALSE;
}

/* The first boundary line of the stack from the line at i on, or the end. */
static void find_boundary(const struct builder *b, gsize i, guint nstack, struct stop *stop)
{
	stop->from = i;
	for (; i < b->len; i = line_next(b->d, i, b->len)) {
		if (at_boundary(b, i, nstack, stop))
			return;
	}
	stop->line = b->len;
	stop->level = -1;
	stop->close = FALSE;
}

/* Where a part ends before the boundary line at i: before the line end
   that precedes it, not before from. */
static gsize before_line_end(const guint8 *d, gsize from, gsize i)
{
	if (i > from && d[i - 1] == '\n')
		i--;
	if (i > from && d[i - 1] == '\r')
		i--;
	return i;
}

/* Where a body from body on ends at *stop: before the line end that
   precedes a boundary line (that line end is the boundary's, unless it
   ends a line the scan did not look at, such as a closing boundary's), at
   the end of the message. */
static gsize entity_end(const struct builder *b, gsize body, const struct stop *stop)
{
	return stop->level < 0 ? stop->line
			       : before_line_end(b->d, MAX(body, stop->from), stop->line);
}

/*
 * A body that is empty because a boundary of a multipart around it starts
 * it: the line end of the header's empty line is the boundary's (dovecot:
 * "--q CRLF CRLF --q" is a part with an empty header). Where the header and
 * body then end.
 */
static gsize header_gives_line_end(const struct builder *b, gsize start, gsize body)
{
	return before_line_end(b->d, start, body);
}

/* The end of the header at start: after its empty line, or, when a
   boundary line or the end comes first, there (before the line end that
   precedes the boundary, as for a body; the body is then empty). */
static gsize read_header(const struct builder *b, gsize start, guint nstack, struct stop *stop,
			 gboolean *ended_by_stop)
{
	stop->from = start;
	for (gsize i = start; i < b->len; i = line_next(b->d, i, b->len)) {
		if (at_boundary(b, i, nstack, stop)) {
			*ended_by_stop = TRUE;
			return before_line_end(b->d, start, i);
		}
		if (line_empty(b->d, i, b->len)) {
			*ended_by_stop = FALSE;
			return line_next(b->d, i, b->len);
		}
	}
	stop->line = b->len;
	stop->level = -1;
	stop->close = FALSE;
	*ended_by_stop = TRUE;
	return b->len;
}

static gboolean count_part(struct builder *b)
{
	if (b->s->nparts >= MIME_PARTS_MAX) {
		b->s->cut = TRUE;
		return FALSE;
	}
	b->s->nparts++;
	return TRUE;
}

/* The children of multipart p (boundary pushed at level nstack - 1), from
   the boundary line at *stop on; *stop becomes where p ends. */
static void parse_children(struct builder *b, struct mime_part *p, guint depth, guint nstack,
			   struct stop *stop)
{
	gboolean digest = strcmp(p->subtype, "digest") == 0;
	guint own = nstack - 1;
	guint n = 0;

	while (stop->level == (int)own) {
		gsize start = line_next(b->d, stop->line, b->len);

		if (stop->close) {
			/* the epilogue runs to a boundary of the multiparts around */
			find_boundary(b, start, own, stop);
			return;
		}
		if (!count_part(b)) {
			/* cut: the rest is only looked through for where p ends */
			for (;;) {
				find_boundary(b, start, nstack, stop);
				if (stop->level != (int)own || stop->close)
					break;
				start = line_next(b->d, stop->line, b->len);
			}
			continue;
		}
		char *sec = child_section(p->section, ++n);
		struct mime_part *child = parse_entity(b, start, sec, NULL, digest, depth + 1,
						       nstack, stop);

		mime_part_add_child(p, child);
		g_free(sec);
	}
}

/*
 * The entity whose header starts at start, ending at the first boundary
 * line of the nstack multiparts around it (*stop): a part numbered section
 * (already counted). For a message's own entity (msg_prefix its number, ""
 * or a message/rfc822 part's): when it is a multipart it takes the
 * message's number and its children are numbered below it, as RFC 3501
 * §6.4.5 does; section is then unused. Without a Content-Type, a part of a
 * multipart/digest is message/rfc822.
 */
static struct mime_part *parse_entity(struct builder *b, gsize start, const char *section,
				      const char *msg_prefix, gboolean in_digest, guint depth,
				      guint nstack, struct stop *stop)
{
	struct fields f;
	gboolean header_only;
	gsize body = read_header(b, start, nstack, stop, &header_only);
	gsize end;
	GPtrArray *params = g_ptr_array_new();
	char *type = NULL, *subtype = NULL;
	struct mime_part *p;
	struct span *sp = NULL;

	read_fields(b->d, start, body, &f);
	if (!f.content_type || !read_content_type(f.content_type, &type, &subtype, params)) {
		type = g_strdup(in_digest ? "message" : "text");
		subtype = g_strdup(in_digest ? "rfc822" : "plain");
	}
	/* RFC 2046 §4.1.2's default, which servers write out in BODYSTRUCTURE */
	if (g_ascii_strcasecmp(type, "text") == 0 && !mime_param_get(params, "charset"))
		param_add(params, g_strdup("charset"), g_strdup("us-ascii"));
	if (msg_prefix && g_ascii_strcasecmp(type, "multipart") == 0)
		section = msg_prefix;
	p = mime_part_new(section, type, subtype);
	g_free(type);
	g_free(subtype);
	for (guint k = 0; k < params->len; k++)
		g_ptr_array_add(p->params, params->pdata[k]);
	g_ptr_array_free(params, TRUE);
	if (f.encoding && *f.encoding) {
		char *enc = NULL;

		read_token(skip_space(f.encoding), &enc);
		if (enc) {
			g_free(p->encoding);
			p->encoding = g_ascii_strdown(enc, -1);
			g_free(enc);
		}
	}
	if (f.disposition) {
		char *disp = NULL;
		const char *q = read_token(skip_space(f.disposition), &disp);

		if (disp) {
			p->disposition = g_ascii_strdown(disp, -1);
			g_free(disp);
			read_params(q, p->disp_params);
		}
	}
	p->id = g_steal_pointer(&f.id);
	p->description = g_steal_pointer(&f.description);
	fields_clear(&f);
	/* Kept before the parts inside: the number of a message/rfc822 part
	   is its own, not its multipart body's. */
	if (!g_hash_table_contains(b->parts, section)) {
		sp = span_new(start, body, body);
		g_hash_table_insert(b->parts, g_strdup(section), sp);
	}

	const char *bnd = mime_param_get(p->params, "boundary");
	gboolean deeper = depth < MIME_DEPTH_MAX;

	if (header_only) {
		end = body;
	} else if (strcmp(p->type, "multipart") == 0 && bnd && *bnd && deeper) {
		b->stack[nstack] = bnd;
		b->stack_len[nstack] = strlen(bnd);
		find_boundary(b, body, nstack + 1, stop); /* the preamble */
		if (stop->level >= 0 && stop->level < (int)nstack && stop->line == body) {
			body = end = header_gives_line_end(b, start, body);
		} else {
			parse_children(b, p, depth, nstack + 1, stop);
			end = entity_end(b, body, stop);
		}
	} else if (strcmp(p->type, "message") == 0 && strcmp(p->subtype, "rfc822") == 0 &&
		   deeper) {
		/* Whatever its Content-Transfer-Encoding says, as dovecot does. */
		if (count_part(b))
			mime_part_add_child(p, parse_message(b, body, section, depth + 1, nstack,
							     stop));
		else
			find_boundary(b, body, nstack, stop);
		end = entity_end(b, body, stop);
	} else {
		if (!deeper && (strcmp(p->type, "multipart") == 0 || strcmp(p->type, "message") == 0))
			b->s->cut = TRUE;
		find_boundary(b, body, nstack, stop);
		if (stop->level >= 0 && stop->line == body)
			body = end = header_gives_line_end(b, start, body);
		else
			end = entity_end(b, body, stop);
	}
	p->size = end - body;
	if (sp) {
		sp->body = body;
		sp->end = end;
	}
	b->last.hdr = start;
	b->last.body = body;
	b->last.end = end;
	return p;
}

/*
 * The message whose header starts at start, numbered below prefix ("" the
 * top level, or a message/rfc822 part's section): a multipart numbered as
 * prefix itself, else its body as part "prefix.1". Counted already.
 */
static struct mime_part *parse_message(struct builder *b, gsize start, const char *prefix,
				       guint depth, guint nstack, struct stop *stop)
{
	char *one = child_section(prefix, 1);
	struct mime_part *root = parse_entity(b, start, one, prefix, FALSE, depth, nstack, stop);

	g_hash_table_insert(b->messages, g_strdup(prefix),
			    span_new(start, b->last.body, b->last.end));
	g_free(one);
	return root;
}

static void builder_init(struct builder *b, const guint8 *data, gsize len)
{
	b->d = data;
	b->len = data ? len : 0;
	b->s = g_new0(struct mime_structure, 1);
	b->parts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	b->messages = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	struct stop stop;

	b->s->nparts = 1;
	b->s->root = parse_message(b, 0, "", 0, 0, &stop);
}

static void builder_clear(struct builder *b)
{
	g_hash_table_unref(b->parts);
	g_hash_table_unref(b->messages);
}

struct mime_structure *mime_local_structure(const guint8 *data, gsize len)
{
	struct builder b;

	builder_init(&b, data, len);
	builder_clear(&b);
	return b.s;
}

static GByteArray *bytes(const guint8 *d, gsize from, gsize to)
{
	GByteArray *out = g_byte_array_sized_new((guint)(to - from));

	if (to > from)
		g_byte_array_append(out, d + from, (guint)(to - from));
	return out;
}

/* The message number before ".NAME" (or "" for a bare NAME), or NULL. */
static char *strip_suffix(const char *section, const char *name)
{
	gsize n = strlen(section), k = strlen(name);

	if (n == k && g_ascii_strcasecmp(section, name) == 0)
		return g_strdup("");
	if (n > k + 1 && section[n - k - 1] == '.' &&
	    g_ascii_strcasecmp(section + n - k, name) == 0)
		return g_strndup(section, n - k - 1);
	return NULL;
}

GByteArray *mime_local_section(const guint8 *data, gsize len, const char *section)
{
	struct builder b;
	GByteArray *out = NULL;
	const struct span *sp;
	char *base;

	if (!section)
		return NULL;
	builder_init(&b, data, len);
	if (*section == '\0') {
		out = bytes(b.d, 0, b.len);
	} else if ((base = strip_suffix(section, "HEADER"))) {
		sp = g_hash_table_lookup(b.messages, base);
		if (sp)
			out = bytes(b.d, sp->hdr, sp->body);
		g_free(base);
	} else if ((base = strip_suffix(section, "TEXT"))) {
		sp = g_hash_table_lookup(b.messages, base);
		if (sp)
			out = bytes(b.d, sp->body, sp->end);
		g_free(base);
	} else if ((base = strip_suffix(section, "MIME"))) {
		sp = *base ? g_hash_table_lookup(b.parts, base) : NULL;
		if (sp)
			out = bytes(b.d, sp->hdr, sp->body);
		g_free(base);
	} else if ((sp = g_hash_table_lookup(b.parts, section))) {
		out = bytes(b.d, sp->body, sp->end);
	}
	builder_clear(&b);
	mime_structure_free(b.s);
	return out;
}
