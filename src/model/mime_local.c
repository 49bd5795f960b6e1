/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_local: the structure and sections of message bytes, the way an
 * IMAP server (dovecot's message parser, RFC 3501 §6.4.5) cuts them.
 *
 * The cutting is done here rather than by GMimeParser: a section must be
 * the server's bytes exactly (where a part ends before the line end that
 * precedes its boundary, what a part without a closing boundary holds),
 * and GMime's objects keep no offsets of multipart or message parts. The
 * values of the header fields are read as a server keeps them for
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

/* Where the body of the entity at [start, end) begins: after the first
   empty line; end when there is none (all header). */
static gsize header_end(const guint8 *d, gsize start, gsize end)
{
	for (gsize i = start; i < end; i = line_next(d, i, end)) {
		if (line_empty(d, i, end))
			return line_next(d, i, end);
	}
	return end;
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

static struct mime_part *parse_message(struct builder *b, gsize start, gsize end,
				       const char *prefix, guint depth);

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

/*
 * The entity at [start, end), header at start: a part numbered section.
 * For a message's own entity (msg_prefix its number, "" or a
 * message/rfc822 part's): when it is a multipart it takes the message's
 * number and its children are numbered below it, as RFC 3501 §6.4.5 does;
 * section is then unused. Without a Content-Type, a part of a
 * multipart/digest is message/rfc822.
 */
static struct mime_part *parse_entity(struct builder *b, gsize start, gsize end,
				      const char *section, const char *msg_prefix,
				      gboolean in_digest, guint depth)
{
	struct fields f;
	gsize body = header_end(b->d, start, end);
	GPtrArray *params = g_ptr_array_new();
	char *type = NULL, *subtype = NULL;
	struct mime_part *p;

	read_fields(b->d, start, body, &f);
	if (!f.content_type || !read_content_type(f.content_type, &type, &subtype, params)) {
		type = g_strdup(in_digest ? "message" : "text");
		subtype = g_strdup(in_digest ? "rfc822" : "plain");
		if (!in_digest)
			param_add(params, g_strdup("charset"), g_strdup("us-ascii"));
	}
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
	p->size = end - body;
	if (!g_hash_table_contains(b->parts, section))
		g_hash_table_insert(b->parts, g_strdup(section), span_new(start, body, end));
	b->s->nparts++;

	if (depth >= MIME_DEPTH_MAX) {
		if (strcmp(p->type, "multipart") == 0 || strcmp(p->type, "message") == 0)
			b->s->cut = TRUE;
		return p;
	}
	if (strcmp(p->type, "multipart") == 0) {
		const char *bnd = mime_param_get(p->params, "boundary");
		gboolean digest = strcmp(p->subtype, "digest") == 0;
		gsize blen = bnd ? strlen(bnd) : 0;
		gsize part_start = 0;
		gboolean in_part = FALSE;
		guint n = 0;

		if (blen == 0)
			return p; /* no boundary: nothing to cut it into */
		for (gsize i = body; i < end; i = line_next(b->d, i, end)) {
			gboolean close;

			if (!is_boundary(b->d, i, end, bnd, blen, &close))
				continue;
			if (in_part) {
				if (b->s->nparts >= MIME_PARTS_MAX) {
					b->s->cut = TRUE;
					return p;
				}
				char *sec = child_section(section, ++n);
				mime_part_add_child(p, parse_entity(b, part_start,
								     before_line_end(b->d, part_start, i),
								     sec, NULL, digest, depth + 1));
				g_free(sec);
			}
			if (close)
				return p; /* the rest is the epilogue */
			part_start = line_next(b->d, i, end);
			in_part = TRUE;
		}
		if (in_part) {
			/* no closing boundary: the last part runs to the end */
			if (b->s->nparts >= MIME_PARTS_MAX) {
				b->s->cut = TRUE;
				return p;
			}
			char *sec = child_section(section, ++n);
			mime_part_add_child(p, parse_entity(b, part_start, end, sec, NULL, digest, depth + 1));
			g_free(sec);
		}
	} else if (strcmp(p->type, "message") == 0 && strcmp(p->subtype, "rfc822") == 0) {
		/* Whatever its Content-Transfer-Encoding says, as dovecot does. */
		if (b->s->nparts >= MIME_PARTS_MAX) {
			b->s->cut = TRUE;
			return p;
		}
		mime_part_add_child(p, parse_message(b, body, end, section, depth + 1));
	}
	return p;
}

/*
 * The message at [start, end) numbered below prefix ("" the top level, or
 * a message/rfc822 part's section): a multipart numbered as prefix itself,
 * else its body as part "prefix.1".
 */
static struct mime_part *parse_message(struct builder *b, gsize start, gsize end,
				       const char *prefix, guint depth)
{
	struct mime_part *root;
	char *one = child_section(prefix, 1);

	g_hash_table_insert(b->messages, g_strdup(prefix),
			    span_new(start, header_end(b->d, start, end), end));
	root = parse_entity(b, start, end, one, prefix, FALSE, depth);
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
	b->s->root = parse_message(b, 0, b->len, "", 0);
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
