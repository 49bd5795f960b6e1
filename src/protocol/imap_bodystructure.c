/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/imap_bodystructure.h"

#include "protocol/imap_client.h" /* imap_quote */

#include <gio/gio.h>
#include <string.h>

/* Positions in a non-multipart body (RFC 3501 §9, body-type-1part). */
enum {
	F_TYPE,
	F_SUBTYPE,
	F_PARAMS,
	F_ID,
	F_DESCRIPTION,
	F_ENCODING,
	F_SIZE,
	F_AFTER_FIELDS, /* text: lines; message/rfc822: envelope */
};

struct bs_ctx {
	struct mime_structure *s;
};

static void param_free(gpointer data)
{
	struct mime_param *p = data;

	g_free(p->name);
	g_free(p->value);
	g_free(p);
}

/* A string value (quoted, literal or atom) as a C string, or NULL for NIL,
   lists and anything else. A literal's NUL byte ends it. */
static char *dup_str(const struct imap_value *v)
{
	const char *s = imap_value_str(v);

	return s ? g_strndup(s, v->len) : NULL;
}

static char *dup_lower(const struct imap_value *v, const char *fallback)
{
	const char *s = imap_value_str(v);
	char *copy, *low;

	if (!s || !*s)
		return fallback ? g_strdup(fallback) : NULL;
	/* g_strndup stops at a NUL a literal may hold. */
	copy = g_strndup(s, v->len);
	low = g_ascii_strdown(copy, -1);
	g_free(copy);
	return low;
}

/* body-fld-octets: a number, or (lenient) a string of digits; 0 otherwise. */
static guint64 value_number(const struct imap_value *v)
{
	guint64 n = 0;
	const char *s;

	if (imap_value_u64(v, &n))
		return n;
	s = imap_value_str(v);
	if (!s || v->type != IMAP_V_STRING || !*s || v->len > 20)
		return 0;
	for (size_t i = 0; i < v->len; i++) {
		if (!g_ascii_isdigit(s[i]) || n > (G_MAXUINT64 - 9) / 10)
			return 0;
		n = n * 10 + (guint64)(s[i] - '0');
	}
	return n;
}

static const struct imap_value *item(const struct imap_value *list, size_t i)
{
	return i < list->n ? &list->items[i] : NULL;
}

/* body-fld-param: ("name" "value" ...) or NIL. Pairs whose name or value is
   not a string are skipped; an odd last name is ignored. */
static void read_params(const struct imap_value *v, GPtrArray *out)
{
	if (!v || v->type != IMAP_V_LIST)
		return;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		struct mime_param *p;
		char *name = dup_str(&v->items[i]);
		char *value = dup_str(&v->items[i + 1]);

		if (!name || !value) {
			g_free(name);
			g_free(value);
			continue;
		}
		p = g_new(struct mime_param, 1);
		p->name = name;
		p->value = value;
		g_ptr_array_add(out, p);
	}
}

/* body-fld-dsp: ("attachment" params) or NIL; a bare string (sent by some
   servers) is taken as the disposition without parameters. */
static void read_disposition(const struct imap_value *v, struct mime_part *p)
{
	if (!v)
		return;
	if (v->type == IMAP_V_LIST) {
		if (v->n < 1)
			return;
		p->disposition = dup_lower(&v->items[0], NULL);
		if (p->disposition)
			read_params(item(v, 1), p->disp_params);
		return;
	}
	p->disposition = dup_lower(v, NULL);
}

static char *child_section(const char *parent, guint i)
{
	return *parent ? g_strdup_printf("%s.%u", parent, i) : g_strdup_printf("%u", i);
}

static gboolean is_multipart(const struct imap_value *v)
{
	return v->n > 0 && v->items[0].type == IMAP_V_LIST;
}

static struct mime_part *parse_body(struct bs_ctx *c, const struct imap_value *v,
				    const char *section, guint depth, GError **err);

static struct mime_part *new_part(struct bs_ctx *c, const char *section, guint depth)
{
	struct mime_part *p;

	if (depth > MIME_DEPTH_MAX || c->s->nparts >= MIME_PARTS_MAX) {
		c->s->cut = TRUE;
		return NULL;
	}
	p = mime_part_new(section, "application", "octet-stream");
	c->s->nparts++;
	return p;
}

static struct mime_part *parse_multipart(struct bs_ctx *c, const struct imap_value *v,
					 const char *section, guint depth, GError **err)
{
	struct mime_part *p = new_part(c, section, depth);
	size_t k = 0;

	if (!p)
		return NULL;
	g_free(p->type);
	p->type = g_strdup("multipart");
	for (; k < v->n && v->items[k].type == IMAP_V_LIST; k++) {
		char *sec = child_section(section, (guint)k + 1);
		GError *e = NULL;
		struct mime_part *child = parse_body(c, &v->items[k], sec, depth + 1, &e);

		g_free(sec);
		if (e) {
			g_propagate_error(err, e);
			mime_part_free(p);
			return NULL;
		}
		if (child)
			mime_part_add_child(p, child);
	}
	g_free(p->subtype);
	/* RFC 2046 §5.1.3: an unknown multipart is handled as mixed. */
	p->subtype = dup_lower(item(v, k), "mixed");
	/* body-ext-mpart: params, then disposition, language, location. */
	read_params(item(v, k + 1), p->params);
	read_disposition(item(v, k + 2), p);
	return p;
}

/* The body of a message/rfc822 (or message/global) part p, numbered as a
   message below p's section. A body slot that is not a body is no error:
   p then stays a leaf. */
static gboolean parse_message_body(struct bs_ctx *c, const struct imap_value *body,
				   struct mime_part *p, guint depth, GError **err)
{
	struct mime_part *inner;
	GError *e = NULL;
	char *sec;

	if (!body || body->type != IMAP_V_LIST || body->n < (is_multipart(body) ? 1u : 2u))
		return TRUE;
	sec = is_multipart(body) ? g_strdup(p->section) : child_section(p->section, 1);
	inner = parse_body(c, body, sec, depth + 1, &e);
	g_free(sec);
	if (e) {
		g_propagate_error(err, e);
		return FALSE;
	}
	if (inner)
		mime_part_add_child(p, inner);
	return TRUE;
}

static struct mime_part *parse_single(struct bs_ctx *c, const struct imap_value *v,
				      const char *section, guint depth, GError **err)
{
	struct mime_part *p = new_part(c, section, depth);
	size_t ext = F_AFTER_FIELDS;

	if (!p)
		return NULL;
	g_free(p->type);
	g_free(p->subtype);
	g_free(p->encoding);
	p->type = dup_lower(item(v, F_TYPE), "application");
	p->subtype =
	    dup_lower(item(v, F_SUBTYPE), strcmp(p->type, "text") == 0 ? "plain" : "octet-stream");
	read_params(item(v, F_PARAMS), p->params);
	p->id = dup_str(item(v, F_ID));
	p->description = dup_str(item(v, F_DESCRIPTION));
	p->encoding = dup_lower(item(v, F_ENCODING), "7bit");
	p->size = item(v, F_SIZE) ? value_number(item(v, F_SIZE)) : 0;

	if (strcmp(p->type, "text") == 0) {
		ext = F_AFTER_FIELDS + 1; /* lines */
	} else if (strcmp(p->type, "message") == 0 &&
		   (strcmp(p->subtype, "rfc822") == 0 || strcmp(p->subtype, "global") == 0) &&
		   v->n > F_AFTER_FIELDS + 1) {
		/* envelope, body, lines */
		if (!parse_message_body(c, item(v, F_AFTER_FIELDS + 1), p, depth, err)) {
			mime_part_free(p);
			return NULL;
		}
		ext = F_AFTER_FIELDS + 3;
	}
	/* body-ext-1part: md5, then disposition, language, location. */
	read_disposition(item(v, ext + 1), p);
	return p;
}

/* One body: bounded recursion, depth grows by one per call. NULL and no
   error when the part is beyond the bounds (c->s->cut is then set). */
static struct mime_part *parse_body(struct bs_ctx *c, const struct imap_value *v,
				    const char *section, guint depth, GError **err)
{
	if (!v || v->type != IMAP_V_LIST) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "BODYSTRUCTURE: a body at section \"%s\" is not a list", section);
		return NULL;
	}
	if (is_multipart(v))
		return parse_multipart(c, v, section, depth, err);
	if (v->n < 2) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "BODYSTRUCTURE: the body at section \"%s\" has no type and subtype",
			    section);
		return NULL;
	}
	return parse_single(c, v, section, depth, err);
}

struct mime_structure *mime_structure_from_bodystructure(const struct imap_value *v, GError **err)
{
	struct bs_ctx c;
	GError *e = NULL;

	c.s = g_new0(struct mime_structure, 1);
	c.s->root =
	    parse_body(&c, v, v && v->type == IMAP_V_LIST && is_multipart(v) ? "" : "1", 1, &e);
	if (e || !c.s->root) {
		/* The root is never cut (depth 1, no part yet), so no root is an error. */
		if (e)
			g_propagate_error(err, e);
		else
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "BODYSTRUCTURE: no body");
		mime_structure_free(c.s);
		return NULL;
	}
	return c.s;
}

void mime_structure_free(struct mime_structure *s)
{
	if (!s)
		return;
	mime_part_free(s->root);
	g_free(s);
}

struct mime_part *mime_part_new(const char *section, const char *type, const char *subtype)
{
	struct mime_part *p = g_new0(struct mime_part, 1);

	p->section = g_strdup(section ? section : "");
	p->type = g_ascii_strdown(type ? type : "application", -1);
	p->subtype = g_ascii_strdown(subtype ? subtype : "octet-stream", -1);
	p->encoding = g_strdup("7bit");
	p->params = g_ptr_array_new_with_free_func(param_free);
	p->disp_params = g_ptr_array_new_with_free_func(param_free);
	/* No free function: mime_part_free walks the tree without recursion. */
	p->children = g_ptr_array_new();
	return p;
}

void mime_part_add_child(struct mime_part *parent, struct mime_part *child)
{
	child->parent = parent;
	g_ptr_array_add(parent->children, child);
}

static void part_free_one(struct mime_part *p)
{
	g_free(p->section);
	g_free(p->type);
	g_free(p->subtype);
	g_ptr_array_unref(p->params);
	g_free(p->id);
	g_free(p->description);
	g_free(p->encoding);
	g_free(p->disposition);
	g_ptr_array_unref(p->disp_params);
	g_ptr_array_unref(p->children);
	g_free(p);
}

void mime_part_free(struct mime_part *p)
{
	GPtrArray *stack;

	if (!p)
		return;
	/* An explicit stack: a tree built by any builder frees in constant C stack. */
	stack = g_ptr_array_new();
	g_ptr_array_add(stack, p);
	while (stack->len > 0) {
		struct mime_part *q = g_ptr_array_steal_index_fast(stack, stack->len - 1);

		for (guint i = 0; i < q->children->len; i++)
			g_ptr_array_add(stack, q->children->pdata[i]);
		part_free_one(q);
	}
	g_ptr_array_unref(stack);
}

const char *mime_param_get(const GPtrArray *params, const char *name)
{
	if (!params || !name)
		return NULL;
	for (guint i = 0; i < params->len; i++) {
		const struct mime_param *p = params->pdata[i];

		if (g_ascii_strcasecmp(p->name, name) == 0)
			return p->value;
	}
	return NULL;
}

const struct mime_part *mime_structure_find(const struct mime_structure *s, const char *section)
{
	GPtrArray *stack;
	const struct mime_part *found = NULL;

	if (!s || !s->root || !section)
		return NULL;
	/* Depth-first, parents before children: a message/rfc822 part comes
	   before its multipart body, which shares its section. */
	stack = g_ptr_array_new();
	g_ptr_array_add(stack, s->root);
	while (stack->len > 0 && !found) {
		const struct mime_part *q = g_ptr_array_steal_index_fast(stack, stack->len - 1);

		if (strcmp(q->section, section) == 0)
			found = q;
		for (guint i = q->children->len; i > 0; i--)
			g_ptr_array_add(stack, q->children->pdata[i - 1]);
	}
	g_ptr_array_unref(stack);
	return found;
}

/* -- kept on disk ------------------------------------------------------------ */

static void render_string(GString *out, const char *s)
{
	g_autofree char *q = s ? imap_quote(s) : NULL;

	if (!s)
		g_string_append(out, "NIL");
	else if (q)
		g_string_append(out, q);
	else
		g_string_append_printf(out, "{%zu}\r\n%s", strlen(s), s);
}

static void render_params(GString *out, const GPtrArray *params)
{
	if (!params || params->len == 0) {
		g_string_append(out, "NIL");
		return;
	}
	g_string_append_c(out, '(');
	for (guint i = 0; i < params->len; i++) {
		const struct mime_param *p = params->pdata[i];

		if (i)
			g_string_append_c(out, ' ');
		render_string(out, p->name);
		g_string_append_c(out, ' ');
		render_string(out, p->value);
	}
	g_string_append_c(out, ')');
}

static void render_disposition(GString *out, const struct mime_part *p)
{
	if (!p->disposition) {
		g_string_append(out, "NIL");
		return;
	}
	g_string_append_c(out, '(');
	render_string(out, p->disposition);
	g_string_append_c(out, ' ');
	render_params(out, p->disp_params);
	g_string_append_c(out, ')');
}

/* One body as BODYSTRUCTURE writes it; depth is bounded by the structure's
   own (MIME_DEPTH_MAX). */
static void render_body(GString *out, const struct mime_part *p)
{
	gboolean message = p->children->len == 1 && strcmp(p->type, "message") == 0;

	g_string_append_c(out, '(');
	if (p->children->len > 0 && !message) {
		for (guint i = 0; i < p->children->len; i++)
			render_body(out, p->children->pdata[i]);
		g_string_append_c(out, ' ');
		render_string(out, p->subtype);
		g_string_append_c(out, ' ');
		render_params(out, p->params);
		g_string_append_c(out, ' ');
		render_disposition(out, p);
		g_string_append_c(out, ')');
		return;
	}
	render_string(out, p->type);
	g_string_append_c(out, ' ');
	render_string(out, p->subtype);
	g_string_append_c(out, ' ');
	render_params(out, p->params);
	g_string_append_c(out, ' ');
	render_string(out, p->id);
	g_string_append_c(out, ' ');
	render_string(out, p->description);
	g_string_append_c(out, ' ');
	render_string(out, p->encoding);
	g_string_append_printf(out, " %" G_GUINT64_FORMAT, p->size);
	if (strcmp(p->type, "text") == 0) {
		g_string_append(out, " 0");
	} else if (message) {
		/* The envelope is not kept: ten NILs stand for it. */
		g_string_append(out, " (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ");
		render_body(out, p->children->pdata[0]);
		g_string_append(out, " 0");
	}
	g_string_append(out, " NIL ");
	render_disposition(out, p);
	g_string_append_c(out, ')');
}

char *mime_structure_render(const struct mime_structure *s)
{
	GString *out = g_string_new(NULL);

	render_body(out, s->root);
	return g_string_free(out, FALSE);
}

struct reparse {
	struct imap_response *r;
};

static void on_reparsed(void *ud, struct imap_response *r)
{
	struct reparse *rp = ud;

	if (rp->r)
		imap_response_free(rp->r);
	rp->r = r;
}

struct mime_structure *mime_structure_from_text(const char *text, gsize len, GError **err)
{
	struct imap_parser_callbacks cb = { .response = on_reparsed };
	struct reparse rp = { 0 };
	struct imap_limits lim;
	struct imap_parser *parser;
	struct mime_structure *s = NULL;
	static const char head[] = "* 1 FETCH (BODYSTRUCTURE ";
	static const char tail[] = ")\r\n";

	imap_limits_init_default(&lim);
	/* What this daemon wrote itself, of a structure it kept within
	   MIME_PARTS_MAX parts: no server's line limit applies. */
	lim.max_line = len + sizeof(head) + sizeof(tail);
	lim.max_depth = 2 * MIME_DEPTH_MAX + 8;
	lim.max_elements = 32 * (MIME_PARTS_MAX + 1);
	parser = imap_parser_new(&lim, &cb, &rp);
	if (imap_parser_feed(parser, head, sizeof(head) - 1, err) >= 0 &&
	    imap_parser_feed(parser, text, len, err) >= 0 &&
	    imap_parser_feed(parser, tail, sizeof(tail) - 1, err) >= 0) {
		const struct imap_value *v = rp.r ? imap_fetch_item(rp.r, "BODYSTRUCTURE") : NULL;

		if (v)
			s = mime_structure_from_bodystructure(v, err);
		else
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "no structure");
	}
	if (rp.r)
		imap_response_free(rp.r);
	imap_parser_free(parser);
	return s;
}
