/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How it works: bytes are cut into segments at LF. A response is one segment,
 * or several when literals interrupt it ("... {N}\r\n" N bytes "...\r\n").
 * A segment that is complete inside the caller's buffer is tokenized in place;
 * only a segment split across feed calls is copied (into p->line, bounded by
 * max_line). Tokenizing whole segments keeps the resumable state small: the
 * stack of open lists and, between segments, the open literal. Literal bytes
 * never enter a segment: they are counted down and handed over as they come.
 */
#include "protocol/imap_parse.h"

#include "util/log.h"

#include <string.h>

/* Callers walk lists recursively (BODYSTRUCTURE): keep the nesting well inside any stack. */
#define MAX_DEPTH_CAP 4096
/* A response's memory comes in blocks of this size (one for most). */
#define MEM_BLOCK_SIZE 2048
/* An emptied list array longer than this is freed, not kept for the next response. */
#define SPARE_ITEMS_MAX 1024
/* Bytes of a response shown in an error message. */
#define SNIPPET_MAX 80

G_DEFINE_QUARK(imap-parse-error-quark, imap_parse_error)

enum pstate {
	PS_LINE,
	PS_LITERAL,
	PS_DEAD,
};

/*
 * A response's memory: the response, its strings and its lists are carved
 * from blocks freed together by imap_response_free(), the response itself
 * from the first block made (the chain's last). So a response costs one
 * allocation or a few however many values it holds, where a listing parses
 * one response per message. A request of more than a quarter block (a
 * buffered literal, a long list) gets a block of its own, behind the
 * current one.
 */
struct imap_mem_block {
	struct imap_mem_block *next;
	size_t used, cap;
	max_align_t data[];
};

/* ASCII case without a call into GLib: the tokenizer runs these on every
   FETCH item name and on the bytes of some values. */
static inline char ascii_up(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static gboolean ascii_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ascii_up(a[i]) != ascii_up(b[i]))
			return FALSE;
	}
	return TRUE;
}

static void *mem_alloc(struct imap_mem_block **head, size_t size)
{
	struct imap_mem_block *b = *head;
	void *out;

	size = (size + 7) & ~(size_t)7; /* an imap_value needs no more */
	if (b && size > MEM_BLOCK_SIZE / 4) {
		struct imap_mem_block *own = g_malloc(sizeof(*own) + size);

		own->used = own->cap = size;
		own->next = b->next;
		b->next = own;
		return own->data;
	}
	if (!b || b->cap - b->used < size) {
		size_t cap = MAX((size_t)MEM_BLOCK_SIZE, size);

		b = g_malloc(sizeof(*b) + cap);
		b->used = 0;
		b->cap = cap;
		b->next = *head;
		*head = b;
	}
	out = (char *)b->data + b->used;
	b->used += size;
	return out;
}

static char *mem_strndup(struct imap_response *r, const char *s, size_t n)
{
	char *out = mem_alloc(&r->mem, n + 1);

	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static char *mem_strup(struct imap_response *r, const char *s, size_t n)
{
	char *out = mem_strndup(r, s, n);

	for (size_t i = 0; i < n; i++)
		out[i] = ascii_up(out[i]);
	return out;
}

/* The lists being built: stack[0] is the top level, each GArray of struct
   imap_value whose strings are the response's. */
struct builder {
	GPtrArray *stack;
	GPtrArray *spare; /* emptied GArrays for the next lists, kept across responses */
	gboolean need_sep;      /* a value just ended: a separator must follow */
	gboolean after_list;    /* ... and it was a list: "(a)(b)" is allowed */
	gboolean after_literal; /* ... and it was a literal: for a clearer message */
};

struct imap_parser {
	struct imap_limits lim;
	struct imap_parser_callbacks cb;
	void *ud;
	enum pstate state;
	gboolean paused;
	GString *line; /* a segment split across feed calls */

	/* the response being parsed; resp == NULL between responses */
	struct imap_response *resp;
	struct builder args;
	size_t resp_bytes; /* non-literal bytes of earlier segments of this response */
	gboolean in_cont;  /* parsing a segment after a literal */
	char head[SNIPPET_MAX / 2]; /* the response's first bytes, for messages */
	size_t head_len;
	unsigned elements;
	size_t inline_total;

	/* the open literal (PS_LITERAL) */
	uint64_t lit_size;
	uint64_t lit_left;
	gboolean lit_stream;
	char *lit_buf;
};

enum tok_mode {
	TOK_ARGS, /* data response arguments: literals, BODY[...] atoms, ']' in atoms */
	TOK_CODE, /* resp-text-code arguments: ']' at depth 0 ends them */
};

enum tok_result {
	TOK_ERROR,
	TOK_EOL,
	TOK_LITERAL,
	TOK_CODE_END,
};

struct cursor {
	const char *s;
	size_t len;
	size_t pos;
};

struct lit_hdr {
	uint64_t size;
	gboolean literal8;
};

void imap_limits_init_default(struct imap_limits *l)
{
	l->max_line = 64 * 1024;
	l->max_depth = 64;
	l->max_elements = 100000;
	l->max_literal = (uint64_t)2 * 1024 * 1024 * 1024;
	l->max_inline_literal = 1024 * 1024;
	l->max_inline_total = 16 * 1024 * 1024;
}

void imap_response_free(struct imap_response *r)
{
	struct imap_mem_block *b;

	if (!r)
		return;
	/* r sits in the last block of the chain: read nothing of it after. */
	b = r->mem;
	while (b) {
		struct imap_mem_block *next = b->next;

		g_free(b);
		b = next;
	}
}

/* A new response in a block of its own. */
static struct imap_response *response_new(void)
{
	struct imap_mem_block *head = NULL;
	struct imap_response *r = mem_alloc(&head, sizeof(*r));

	memset(r, 0, sizeof(*r));
	r->mem = head;
	return r;
}

/* An emptied list array back to the spares (or freed, if long). */
static void builder_recycle(struct builder *b, GArray *a)
{
	if (a->len > SPARE_ITEMS_MAX) {
		g_array_free(a, TRUE);
		return;
	}
	g_array_set_size(a, 0);
	g_ptr_array_add(b->spare, a);
}

/* Open a list. */
static void builder_push(struct builder *b)
{
	GArray *a = b->spare->len ? g_ptr_array_steal_index_fast(b->spare, b->spare->len - 1)
				  : g_array_new(FALSE, FALSE, sizeof(struct imap_value));

	g_ptr_array_add(b->stack, a);
}

/* Start the top level of a response; the arrays of the last one are reused. */
static void builder_init(struct builder *b)
{
	if (!b->stack) {
		b->stack = g_ptr_array_new();
		b->spare = g_ptr_array_new();
	}
	while (b->stack->len > 0)
		builder_recycle(b, g_ptr_array_steal_index_fast(b->stack, b->stack->len - 1));
	builder_push(b);
	b->need_sep = FALSE;
	b->after_list = FALSE;
	b->after_literal = FALSE;
}

/* Drop the lists being built (their values are the response's memory). */
static void builder_clear(struct builder *b)
{
	if (!b->stack)
		return;
	while (b->stack->len > 0)
		builder_recycle(b, g_ptr_array_steal_index_fast(b->stack, b->stack->len - 1));
}

static void builder_free(struct builder *b)
{
	if (!b->stack)
		return;
	builder_clear(b);
	for (guint i = 0; i < b->spare->len; i++)
		g_array_free(g_ptr_array_index(b->spare, i), TRUE);
	g_ptr_array_free(b->spare, TRUE);
	g_ptr_array_free(b->stack, TRUE);
	b->stack = b->spare = NULL;
}

static GArray *builder_top(const struct builder *b)
{
	return g_ptr_array_index(b->stack, b->stack->len - 1);
}

static unsigned builder_depth(const struct builder *b)
{
	return b->stack->len - 1;
}

/* Close the innermost list into *out, its items copied into r's memory (at
   the top level: the builder is left empty). */
static void builder_pop(struct builder *b, struct imap_response *r, struct imap_value *out)
{
	GArray *a = g_ptr_array_steal_index_fast(b->stack, b->stack->len - 1);

	memset(out, 0, sizeof(*out));
	out->type = IMAP_V_LIST;
	out->n = a->len;
	if (a->len > 0) {
		out->items = mem_alloc(&r->mem, a->len * sizeof(struct imap_value));
		memcpy(out->items, a->data, a->len * sizeof(struct imap_value));
	}
	builder_recycle(b, a);
}

static void G_GNUC_PRINTF(5, 6) fail(struct imap_parser *p, GError **err, enum imap_parse_error code,
				      const struct cursor *c, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *what = NULL;
	g_autofree char *snip = NULL;
	size_t start = 0;

	if (!err)
		return;
	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (!c) {
		g_set_error(err, IMAP_PARSE_ERROR, code, "%s", what);
		return;
	}
	/* Show the start of the line, or the stretch just before the fault. */
	if (c->pos > SNIPPET_MAX / 2 && c->pos <= c->len)
		start = c->pos - SNIPPET_MAX / 2;
	snip = mfs_log_escape(c->s + start, c->len - start, SNIPPET_MAX);
	if (p->in_cont) {
		/* The line after a literal says little alone: show where the response began. */
		g_autofree char *head = mfs_log_escape(p->head, p->head_len, sizeof(p->head));

		g_set_error(err, IMAP_PARSE_ERROR, code, "%s, in: %s... {literal} %s%s", what, head,
			    start ? "..." : "", snip);
		return;
	}
	g_set_error(err, IMAP_PARSE_ERROR, code, "%s, in: %s%s", what, start ? "..." : "", snip);
}

static gboolean is_atom_char(unsigned char c, enum tok_mode mode)
{
	if (c <= ' ' || c == 0x7f)
		return FALSE;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '"':
		return FALSE;
	case ']':
		return mode == TOK_ARGS;
	default:
		return TRUE;
	}
}

static gboolean count_element(struct imap_parser *p, const struct cursor *c, GError **err)
{
	if (p->elements >= p->lim.max_elements) {
		fail(p, err, IMAP_PARSE_ERROR_LIMIT, c, "more than %u values in one response",
		     p->lim.max_elements);
		return FALSE;
	}
	p->elements++;
	return TRUE;
}

static void builder_append(struct builder *b, const struct imap_value *v, gboolean is_list)
{
	g_array_append_vals(builder_top(b), v, 1);
	b->need_sep = TRUE;
	b->after_list = is_list;
	b->after_literal = FALSE;
}

static gboolean parse_quoted(struct imap_parser *p, struct cursor *c, struct imap_value *v,
			     GError **err)
{
	const char *s = c->s;
	size_t i = c->pos + 1, n = 0;
	char *out;

	/* First pass: validate and measure. */
	for (;;) {
		unsigned char ch;

		if (i >= c->len) {
			fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unterminated quoted string");
			return FALSE;
		}
		ch = (unsigned char)s[i];
		if (ch == '"')
			break;
		if (ch == '\\') {
			if (++i >= c->len) {
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
				     "unterminated quoted string");
				return FALSE;
			}
			ch = (unsigned char)s[i];
		}
		if (ch == '\r' || ch == '\n' || ch == '\0') {
			c->pos = i;
			fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "%s in quoted string",
			     ch == '\0' ? "NUL" : ch == '\r' ? "CR" : "LF");
			return FALSE;
		}
		i++;
		n++;
	}
	out = mem_alloc(&p->resp->mem, n + 1);
	n = 0;
	for (size_t j = c->pos + 1; j < i; j++) {
		if (s[j] == '\\')
			j++;
		out[n++] = s[j];
	}
	out[n] = '\0';
	memset(v, 0, sizeof(*v));
	v->type = IMAP_V_STRING;
	v->str = out;
	v->len = n;
	c->pos = i + 1;
	return TRUE;
}

/* A FETCH item with a section: BODY[...], BINARY[...] and their .PEEK and
   .SIZE forms (RFC 3501 §9, RFC 3516), as opposed to other atoms with
   brackets, such as a mailbox named [Gmail]/All. */
static gboolean is_section_item(const char *s, size_t len)
{
	static const char *const names[] = { "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK",
					     "BINARY.SIZE" };
	const char *open = memchr(s, '[', len);

	if (!open)
		return FALSE;
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		if ((size_t)(open - s) == strlen(names[i]) &&
		    ascii_caseeq(s, names[i], strlen(names[i])))
			return TRUE;
	}
	return FALSE;
}

/*
 * A FETCH item name with a section in one canonical form, whatever the
 * server's spelling (RFC 3501 §9: keywords are case-insensitive, a
 * header-fld-name is an astring, members are separated by SP): upper case,
 * a quoted header field name unquoted, one space between list members and
 * none inside the parentheses. Courier answers HEADER.FIELDS ("SUBJECT")
 * to HEADER.FIELDS (SUBJECT); the names mailfs asks for are in this form,
 * so an item is found by one comparison.
 */
static char *canonical_section_item(struct imap_response *r, const char *s, size_t len,
				    size_t *out_len)
{
	/* Never longer than s: a SP stands for a run of blanks, quotes go. */
	char *out = mem_alloc(&r->mem, len + 1);
	size_t n = 0;
	gboolean space = FALSE;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == ' ' || ch == '\t') {
			space = TRUE;
			continue;
		}
		if (space && n && ch != ')' && out[n - 1] != '(')
			out[n++] = ' ';
		space = FALSE;
		if (ch == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				out[n++] = ascii_up(s[i]);
			}
			continue;
		}
		out[n++] = ascii_up(ch);
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

static gboolean parse_atom(struct imap_parser *p, struct cursor *c, enum tok_mode mode,
			   struct imap_value *v, GError **err)
{
	const char *s = c->s;
	size_t start = c->pos, i = c->pos;
	unsigned bracket = 0;

	while (i < c->len) {
		unsigned char ch = (unsigned char)s[i];

		if (bracket > 0) {
			/* BODY[HEADER.FIELDS (A B)]<0>: SP and parens belong to the atom. */
			if (ch < ' ' || ch == 0x7f) {
				c->pos = i;
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
				     "control byte 0x%02x inside [...] of an atom", ch);
				return FALSE;
			}
			if (ch == '"') {
				/* A quoted header field name: a ']' in it ends nothing. */
				for (i++; i < c->len && s[i] != '"'; i++) {
					if (s[i] == '\\')
						i++;
				}
				if (i >= c->len) {
					c->pos = i;
					fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
					     "unterminated quoted string inside [...] of an atom");
					return FALSE;
				}
			} else if (ch == ']') {
				bracket--;
			} else if (ch == '[') {
				bracket++;
			}
			i++;
			continue;
		}
		if (!is_atom_char(ch, mode))
			break;
		if (ch == '[' && mode == TOK_ARGS)
			bracket++;
		i++;
	}
	if (bracket > 0) {
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unterminated '[' in atom");
		return FALSE;
	}
	if (i == start) {
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unexpected byte 0x%02x",
		     (unsigned char)s[i]);
		return FALSE;
	}
	memset(v, 0, sizeof(*v));
	if (i - start == 3 && ascii_caseeq(s + start, "NIL", 3)) {
		v->type = IMAP_V_NIL;
	} else if (mode == TOK_ARGS && is_section_item(s + start, i - start)) {
		v->type = IMAP_V_ATOM;
		v->str = canonical_section_item(p->resp, s + start, i - start, &v->len);
	} else {
		v->type = IMAP_V_ATOM;
		v->str = mem_strndup(p->resp, s + start, i - start);
		v->len = i - start;
	}
	c->pos = i;
	return TRUE;
}

/* c->pos at '{'. The header must end the segment: the literal's bytes follow the CRLF. */
static gboolean parse_literal_header(struct imap_parser *p, struct cursor *c, struct lit_hdr *h,
				     GError **err)
{
	const char *s = c->s;
	size_t i = c->pos + 1;
	uint64_t v = 0;
	size_t digits = 0;

	while (i < c->len && g_ascii_isdigit(s[i])) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10) {
			fail(p, err, IMAP_PARSE_ERROR_LIMIT, c, "literal size overflows 64 bits");
			return FALSE;
		}
		v = v * 10 + d;
		i++;
		digits++;
	}
	if (digits == 0) {
		c->pos = i;
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "literal without a size");
		return FALSE;
	}
	if (i < c->len && s[i] == '+')
		i++;
	if (i >= c->len || s[i] != '}') {
		c->pos = i;
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "malformed literal header");
		return FALSE;
	}
	i++;
	if (i != c->len) {
		c->pos = i;
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
		     "bytes after a literal header before the end of the line");
		return FALSE;
	}
	if (v > p->lim.max_literal) {
		fail(p, err, IMAP_PARSE_ERROR_LIMIT, c,
		     "literal of %" G_GUINT64_FORMAT " bytes exceeds the limit of %" G_GUINT64_FORMAT,
		     v, p->lim.max_literal);
		return FALSE;
	}
	h->size = v;
	c->pos = i;
	return TRUE;
}

/*
 * Tokenize values from c->pos into b until the end of the segment (TOK_EOL), a
 * literal header (TOK_LITERAL, *h filled), or in TOK_CODE mode the ']' that
 * ends the code (TOK_CODE_END, c->pos at it).
 */
static enum tok_result tokenize(struct imap_parser *p, struct builder *b, enum tok_mode mode,
				struct cursor *c, struct lit_hdr *h, GError **err)
{
	for (;;) {
		struct imap_value v;
		unsigned char ch;

		if (c->pos < c->len && c->s[c->pos] == ' ') {
			while (c->pos < c->len && c->s[c->pos] == ' ')
				c->pos++;
			b->need_sep = FALSE;
			b->after_list = FALSE;
			b->after_literal = FALSE;
			continue;
		}
		if (c->pos >= c->len)
			return TOK_EOL;
		ch = (unsigned char)c->s[c->pos];

		if (ch == ')') {
			if (builder_depth(b) == 0) {
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unbalanced ')'");
				return TOK_ERROR;
			}
			builder_pop(b, p->resp, &v);
			builder_append(b, &v, TRUE);
			c->pos++;
			continue;
		}
		if (mode == TOK_CODE && ch == ']') {
			if (builder_depth(b) != 0) {
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unbalanced '(' in code");
				return TOK_ERROR;
			}
			return TOK_CODE_END;
		}
		if (ch < ' ' || ch == 0x7f) {
			fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unexpected control byte 0x%02x",
			     ch);
			return TOK_ERROR;
		}
		if (b->need_sep && !(ch == '(' && b->after_list)) {
			if (b->after_literal)
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
				     "unexpected bytes right after a literal");
			else
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
				     "missing space between values");
			return TOK_ERROR;
		}
		if (ch == '(') {
			if (builder_depth(b) >= p->lim.max_depth) {
				fail(p, err, IMAP_PARSE_ERROR_LIMIT, c,
				     "lists nested deeper than %u", p->lim.max_depth);
				return TOK_ERROR;
			}
			if (!count_element(p, c, err))
				return TOK_ERROR;
			builder_push(b);
			b->need_sep = FALSE;
			b->after_list = FALSE;
			c->pos++;
			continue;
		}
		if (ch == '{' || (ch == '~' && c->pos + 1 < c->len && c->s[c->pos + 1] == '{')) {
			if (mode == TOK_CODE) {
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "literal in a response code");
				return TOK_ERROR;
			}
			h->literal8 = ch == '~';
			if (h->literal8)
				c->pos++;
			if (!parse_literal_header(p, c, h, err))
				return TOK_ERROR;
			return TOK_LITERAL;
		}
		if (!count_element(p, c, err))
			return TOK_ERROR;
		if (ch == '"') {
			if (!parse_quoted(p, c, &v, err))
				return TOK_ERROR;
		} else {
			if (!parse_atom(p, c, mode, &v, err))
				return TOK_ERROR;
		}
		builder_append(b, &v, FALSE);
	}
}

/* Length of the word at pos: up to SP or the end. */
static size_t word_len(const struct cursor *c)
{
	const char *sp = memchr(c->s + c->pos, ' ', c->len - c->pos);

	return sp ? (size_t)(sp - (c->s + c->pos)) : c->len - c->pos;
}

static gboolean all_atom_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!is_atom_char((unsigned char)s[i], TOK_CODE))
			return FALSE;
	}
	return n > 0;
}

static enum imap_status status_word(const char *s, size_t n)
{
	static const struct {
		const char *word;
		enum imap_status st;
	} words[] = {
		{ "OK", IMAP_STATUS_OK },   { "NO", IMAP_STATUS_NO },
		{ "BAD", IMAP_STATUS_BAD }, { "BYE", IMAP_STATUS_BYE },
		{ "PREAUTH", IMAP_STATUS_PREAUTH },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(words); i++) {
		if (strlen(words[i].word) == n && ascii_caseeq(s, words[i].word, n))
			return words[i].st;
	}
	return IMAP_STATUS_NONE;
}

/*
 * "[NAME args] text" at c->pos. Never fails: what does not look like a code
 * stays text. Arguments are tokenized when they can be, else code_args is NIL.
 */
static void parse_code(struct imap_parser *p, struct imap_response *r, struct cursor *c)
{
	const char *s = c->s;
	size_t name = c->pos + 1, q = name, end, args_at;
	struct builder b = { 0 };
	struct lit_hdr h;
	unsigned saved_elements = p->elements;

	while (q < c->len && is_atom_char((unsigned char)s[q], TOK_CODE) && s[q] != '[')
		q++;
	if (q == name || q >= c->len)
		return;
	args_at = q;
	if (s[q] == ']') {
		end = q;
		r->code_args.type = IMAP_V_LIST;
	} else {
		struct cursor ac = { s, c->len, q };
		enum tok_result res;

		if (s[q] == ' ')
			ac.pos = args_at = q + 1;
		builder_init(&b);
		res = tokenize(p, &b, TOK_CODE, &ac, &h, NULL);
		if (res == TOK_CODE_END) {
			end = ac.pos;
			builder_pop(&b, r, &r->code_args);
			builder_free(&b);
		} else {
			const char *rb = memchr(s + args_at, ']', c->len - args_at);

			builder_free(&b);
			p->elements = saved_elements;
			if (!rb)
				return;
			end = (size_t)(rb - s);
			r->code_args.type = IMAP_V_NIL;
		}
	}
	r->code = mem_strup(r, s + name, q - name);
	r->code_text = mem_strndup(r, s + args_at, end - args_at);
	c->pos = end + 1;
	if (c->pos < c->len && s[c->pos] == ' ')
		c->pos++;
}

/* resp-text after the status word: [SP ["[" code "]" [SP]] text] */
static void parse_resp_text(struct imap_parser *p, struct imap_response *r, struct cursor *c)
{
	if (c->pos < c->len)
		c->pos++; /* the SP that ended the status word */
	if (c->pos < c->len && c->s[c->pos] == '[')
		parse_code(p, r, c);
	r->text = mem_strndup(r, c->s + c->pos, c->len - c->pos);
}

static void emit_response(struct imap_parser *p)
{
	struct imap_response *r = p->resp;

	builder_pop(&p->args, r, &r->args);
	p->resp = NULL;
	p->resp_bytes = 0;
	p->elements = 0;
	p->inline_total = 0;
	p->in_cont = FALSE;
	if (p->cb.response)
		p->cb.response(p->ud, r);
	else
		imap_response_free(r);
}

static gboolean start_literal(struct imap_parser *p, const struct cursor *c,
			      const struct lit_hdr *h, GError **err)
{
	struct imap_literal_ctx ctx = { 0 };
	GArray *top = builder_top(&p->args);
	gboolean stream = FALSE;

	if (!count_element(p, c, err))
		return FALSE;
	ctx.resp = p->resp;
	ctx.depth = builder_depth(&p->args);
	ctx.literal8 = h->literal8;
	if (top->len > 0) {
		const struct imap_value *prev = &g_array_index(top, struct imap_value, top->len - 1);

		if (prev->type == IMAP_V_ATOM)
			ctx.prev_atom = prev->str;
	}
	if (p->cb.literal_begin)
		stream = p->cb.literal_begin(p->ud, &ctx, h->size);
	if (!stream) {
		if (h->size > p->lim.max_inline_literal) {
			fail(p, err, IMAP_PARSE_ERROR_LIMIT, c,
			     "literal of %" G_GUINT64_FORMAT " bytes too large to buffer (limit %zu)",
			     h->size, p->lim.max_inline_literal);
			return FALSE;
		}
		if (h->size > p->lim.max_inline_total - p->inline_total) {
			fail(p, err, IMAP_PARSE_ERROR_LIMIT, c,
			     "buffered literals exceed %zu bytes in one response",
			     p->lim.max_inline_total);
			return FALSE;
		}
		p->inline_total += (size_t)h->size;
		p->lit_buf = mem_alloc(&p->resp->mem, (size_t)h->size + 1);
	}
	p->lit_stream = stream;
	p->lit_size = h->size;
	p->lit_left = h->size;
	p->state = PS_LITERAL;
	return TRUE;
}

static void finish_literal(struct imap_parser *p)
{
	struct imap_value v = { 0 };

	if (p->lit_stream) {
		v.type = IMAP_V_STREAMED;
		if (p->cb.literal_end)
			p->cb.literal_end(p->ud);
	} else {
		v.type = IMAP_V_STRING;
		v.len = (size_t)p->lit_size;
		v.str = p->lit_buf;
		v.str[v.len] = '\0';
		p->lit_buf = NULL;
	}
	v.literal_size = p->lit_size;
	builder_append(&p->args, &v, FALSE);
	p->args.after_literal = TRUE;
	p->state = PS_LINE;
}

/* Continue the arguments of a data response; *done when the response is complete. */
static gboolean continue_args(struct imap_parser *p, struct cursor *c, gboolean *done,
			      GError **err)
{
	struct lit_hdr h = { 0 };

	switch (tokenize(p, &p->args, TOK_ARGS, c, &h, err)) {
	case TOK_EOL:
		if (builder_depth(&p->args) > 0) {
			fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "unterminated list");
			return FALSE;
		}
		*done = TRUE;
		return TRUE;
	case TOK_LITERAL:
		if (!start_literal(p, c, &h, err))
			return FALSE;
		if (p->lit_left == 0)
			finish_literal(p);
		return TRUE;
	case TOK_CODE_END:
	case TOK_ERROR:
		break;
	}
	return FALSE;
}

/* The first segment of a response: tag or '*' or '+', then status or keyword. */
static gboolean start_response(struct imap_parser *p, struct cursor *c, gboolean *done,
			       GError **err)
{
	struct imap_response *r = response_new();
	size_t n;

	r->args.type = IMAP_V_LIST;
	r->code_args.type = IMAP_V_LIST;
	p->resp = r;
	p->head_len = MIN(c->len, sizeof(p->head));
	memcpy(p->head, c->s, p->head_len);
	builder_init(&p->args);

	if (c->len == 0) {
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "empty response line");
		return FALSE;
	}
	if (c->s[0] == '+') {
		r->type = IMAP_RESP_CONTINUATION;
		c->pos = 1;
		if (c->pos < c->len && c->s[c->pos] == ' ')
			c->pos++;
		r->text = mem_strndup(r, c->s + c->pos, c->len - c->pos);
		*done = TRUE;
		return TRUE;
	}

	n = word_len(c);
	if (n == 1 && c->s[0] == '*') {
		r->type = IMAP_RESP_UNTAGGED;
		c->pos = 2;
		if (c->pos > c->len || (n = word_len(c)) == 0) {
			fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "untagged response without keyword");
			return FALSE;
		}
		if (g_ascii_isdigit(c->s[c->pos])) {
			uint64_t num = 0;

			for (size_t i = 0; i < n; i++) {
				char d = c->s[c->pos + i];

				if (!g_ascii_isdigit(d)) {
					fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
					     "malformed message number");
					return FALSE;
				}
				num = num * 10 + (unsigned)(d - '0');
				if (num > UINT32_MAX) {
					fail(p, err, IMAP_PARSE_ERROR_LIMIT, c,
					     "message number out of range");
					return FALSE;
				}
			}
			r->has_number = TRUE;
			r->number = (uint32_t)num;
			c->pos += n + 1;
			if (c->pos > c->len || (n = word_len(c)) == 0) {
				fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c,
				     "missing keyword after message number");
				return FALSE;
			}
		}
		if (!all_atom_chars(c->s + c->pos, n)) {
			fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "malformed response keyword");
			return FALSE;
		}
		r->keyword = mem_strup(r, c->s + c->pos, n);
		c->pos += n;
		if (!r->has_number) {
			r->status = status_word(r->keyword, n);
			if (r->status != IMAP_STATUS_NONE) {
				parse_resp_text(p, r, c);
				*done = TRUE;
				return TRUE;
			}
		}
		return continue_args(p, c, done, err);
	}

	/* tagged */
	if (!all_atom_chars(c->s, n) || memchr(c->s, '+', n) || memchr(c->s, '*', n)) {
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "malformed tag");
		return FALSE;
	}
	r->type = IMAP_RESP_TAGGED;
	r->tag = mem_strndup(r, c->s, n);
	c->pos = n + 1;
	if (c->pos > c->len || (n = word_len(c)) == 0) {
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "tagged response without status");
		return FALSE;
	}
	r->status = status_word(c->s + c->pos, n);
	if (r->status != IMAP_STATUS_OK && r->status != IMAP_STATUS_NO &&
	    r->status != IMAP_STATUS_BAD) {
		fail(p, err, IMAP_PARSE_ERROR_SYNTAX, c, "tagged response without OK/NO/BAD");
		return FALSE;
	}
	r->keyword = mem_strup(r, c->s + c->pos, n);
	c->pos += n;
	parse_resp_text(p, r, c);
	*done = TRUE;
	return TRUE;
}

static void reset_response(struct imap_parser *p)
{
	imap_response_free(p->resp); /* also a buffered literal's bytes */
	p->resp = NULL;
	builder_clear(&p->args);
	p->lit_buf = NULL;
	p->resp_bytes = 0;
	p->elements = 0;
	p->inline_total = 0;
	p->in_cont = FALSE;
}

static void die(struct imap_parser *p)
{
	reset_response(p);
	g_string_truncate(p->line, 0);
	p->state = PS_DEAD;
}

struct imap_parser *imap_parser_new(const struct imap_limits *limits,
				    const struct imap_parser_callbacks *cb, void *ud)
{
	struct imap_parser *p = g_new0(struct imap_parser, 1);

	if (limits)
		p->lim = *limits;
	else
		imap_limits_init_default(&p->lim);
	if (p->lim.max_depth > MAX_DEPTH_CAP)
		p->lim.max_depth = MAX_DEPTH_CAP;
	if (p->lim.max_inline_literal > p->lim.max_inline_total)
		p->lim.max_inline_literal = p->lim.max_inline_total;
	if (cb)
		p->cb = *cb;
	p->ud = ud;
	p->line = g_string_new(NULL);
	p->state = PS_LINE;
	return p;
}

void imap_parser_free(struct imap_parser *p)
{
	if (!p)
		return;
	reset_response(p);
	builder_free(&p->args);
	g_string_free(p->line, TRUE);
	g_free(p);
}

void imap_parser_pause(struct imap_parser *p)
{
	p->paused = TRUE;
}

gboolean imap_parser_in_response(const struct imap_parser *p)
{
	return p->resp != NULL || p->line->len > 0 || p->state == PS_LITERAL;
}

/* The response so far exceeds max_line: say so with its first bytes. */
static void fail_too_long(struct imap_parser *p, const char *d, size_t avail, GError **err)
{
	size_t allowed = p->lim.max_line - p->resp_bytes;
	size_t show = MIN(allowed, (size_t)SNIPPET_MAX);
	g_autoptr(GString) head = g_string_new_len(p->line->str, (gssize)MIN(p->line->len, show));
	struct cursor c;

	/* Show the same bytes however the input was split across feed calls. */
	if (head->len < show)
		g_string_append_len(head, d, (gssize)MIN(avail, show - head->len));
	c.s = head->str;
	c.len = head->len;
	c.pos = 0;
	p->in_cont = p->resp != NULL;
	fail(p, err, IMAP_PARSE_ERROR_LIMIT, &c, "response longer than %zu bytes",
	     p->lim.max_line);
}

gssize imap_parser_feed(struct imap_parser *p, const void *data, size_t len, GError **err)
{
	const char *d = data;
	size_t pos = 0;

	if (p->state == PS_DEAD) {
		g_set_error(err, IMAP_PARSE_ERROR, IMAP_PARSE_ERROR_FAILED,
			    "IMAP parser used after an error");
		return -1;
	}
	p->paused = FALSE;
	while (pos < len) {
		const char *lf;
		size_t avail = len - pos, seg;
		struct cursor c;
		gboolean done = FALSE, ok;

		if (p->state == PS_LITERAL) {
			size_t take = (size_t)MIN(p->lit_left, (uint64_t)avail);

			if (p->lit_stream) {
				if (p->cb.literal_chunk)
					p->cb.literal_chunk(p->ud, d + pos, take);
			} else {
				memcpy(p->lit_buf + (p->lit_size - p->lit_left), d + pos, take);
			}
			pos += take;
			p->lit_left -= take;
			if (p->lit_left == 0)
				finish_literal(p);
			continue;
		}

		lf = memchr(d + pos, '\n', avail);
		seg = lf ? (size_t)(lf - (d + pos)) : avail;
		if (seg + (lf ? 1 : 0) > p->lim.max_line - p->resp_bytes - p->line->len) {
			fail_too_long(p, d + pos, seg, err);
			die(p);
			return -1;
		}
		if (!lf) {
			g_string_append_len(p->line, d + pos, (gssize)avail);
			break;
		}
		if (p->line->len == 0) {
			c.s = d + pos;
			c.len = seg;
		} else {
			g_string_append_len(p->line, d + pos, (gssize)seg);
			c.s = p->line->str;
			c.len = p->line->len;
		}
		pos += seg + 1;
		p->resp_bytes += c.len + 1;
		if (c.len > 0 && c.s[c.len - 1] == '\r')
			c.len--;
		c.pos = 0;

		p->in_cont = p->resp != NULL;
		if (!p->in_cont)
			ok = start_response(p, &c, &done, err);
		else
			ok = continue_args(p, &c, &done, err);
		g_string_truncate(p->line, 0);
		if (!ok) {
			die(p);
			return -1;
		}
		if (done) {
			emit_response(p);
			if (p->paused)
				return (gssize)pos;
		}
	}
	return (gssize)len;
}

gboolean imap_value_u64(const struct imap_value *v, uint64_t *out)
{
	uint64_t n = 0;

	if (!v || v->type != IMAP_V_ATOM || v->len == 0 || v->len > 20)
		return FALSE;
	for (size_t i = 0; i < v->len; i++) {
		unsigned d;

		if (!g_ascii_isdigit(v->str[i]))
			return FALSE;
		d = (unsigned)(v->str[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return FALSE;
		n = n * 10 + d;
	}
	*out = n;
	return TRUE;
}

gboolean imap_value_u32(const struct imap_value *v, uint32_t *out)
{
	uint64_t n;

	if (!imap_value_u64(v, &n) || n > UINT32_MAX)
		return FALSE;
	*out = (uint32_t)n;
	return TRUE;
}

const char *imap_value_str(const struct imap_value *v)
{
	if (!v || (v->type != IMAP_V_ATOM && v->type != IMAP_V_STRING))
		return NULL;
	return v->str;
}

gboolean imap_value_is_atom(const struct imap_value *v, const char *upper)
{
	return v && upper && v->type == IMAP_V_ATOM && v->len == strlen(upper) &&
	       g_ascii_strcasecmp(v->str, upper) == 0;
}

/* -- FETCH helpers ---------------------------------------------------------- */

char *imap_flags_to_string(const struct imap_value *list)
{
	GString *out = g_string_new(NULL);

	if (list && list->type == IMAP_V_LIST) {
		for (size_t i = 0; i < list->n; i++) {
			const char *f = imap_value_str(&list->items[i]);

			/* \Recent is the server's per-session note, not a flag anyone
			   can store (RFC 9051 dropped it): showing it would make
			   rsync -X try to set it. */
			if (!f || list->items[i].type != IMAP_V_ATOM ||
			    g_ascii_strcasecmp(f, "\\Recent") == 0)
				continue;
			if (out->len)
				g_string_append_c(out, ' ');
			g_string_append(out, f);
		}
	}
	return g_string_free(out, FALSE);
}

/* One to max digits at *p, consumed: their value; -1 when there is none. */
static int take_digits(const char **p, int max)
{
	int v = 0, n = 0;

	while (n < max && g_ascii_isdigit(**p)) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	return n ? v : -1;
}

static const char *skip_spaces(const char *p)
{
	while (g_ascii_isspace(*p))
		p++;
	return p;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static gint64 days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	gint64 era = (y >= 0 ? y : y - 399) / 400;
	int yoe = (int)(y - era * 400);
	int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

/* Written out rather than with sscanf and GDateTime: a listing parses one
   for every message, and those two were a tenth of the listing's CPU. */
gboolean imap_parse_internaldate(const char *str, gint64 *out)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int day, mon = 0, year, hh, mm, ss, zone;
	const char *p;
	char sign;
	gint64 offset;

	if (!str || strlen(str) > 40)
		return FALSE;
	p = skip_spaces(str);
	if ((day = take_digits(&p, 2)) < 0 || *p++ != '-')
		return FALSE;
	/* ABNF strings are case-insensitive (RFC 5234 2.3). */
	for (int i = 0; i < 12 && !mon; i++)
		if (ascii_caseeq(p, months[i], 3))
			mon = i + 1;
	if (!mon || p[3] != '-')
		return FALSE;
	p += 4;
	if ((year = take_digits(&p, 4)) < 0)
		return FALSE;
	p = skip_spaces(p);
	if ((hh = take_digits(&p, 2)) < 0 || *p++ != ':' || (mm = take_digits(&p, 2)) < 0 ||
	    *p++ != ':' || (ss = take_digits(&p, 2)) < 0)
		return FALSE;
	p = skip_spaces(p);
	sign = *p++;
	if ((sign != '+' && sign != '-') || (zone = take_digits(&p, 4)) < 0)
		return FALSE;
	if (day < 1 || year < 1900 || day > g_date_get_days_in_month((GDateMonth)mon, (GDateYear)year) ||
	    hh > 23 || mm > 59 || ss > 60 || zone > 2359 || zone % 100 > 59)
		return FALSE;
	offset = (gint64)(zone / 100) * 3600 + (gint64)(zone % 100) * 60;
	*out = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + MIN(ss, 59) -
	       (sign == '+' ? offset : -offset);
	return TRUE;
}

/* A FETCH response's att list, or NULL. */
static const struct imap_value *fetch_list(const struct imap_response *r)
{
	if (!r->keyword || strcmp(r->keyword, "FETCH") != 0 || r->args.n < 1 ||
	    r->args.items[0].type != IMAP_V_LIST)
		return NULL;
	return &r->args.items[0];
}

const struct imap_value *imap_fetch_item(const struct imap_response *r, const char *name)
{
	const struct imap_value *out = NULL;

	imap_fetch_items(r, &name, &out, 1);
	return out;
}

void imap_fetch_items(const struct imap_response *r, const char *const *names,
		      const struct imap_value **out, size_t n)
{
	const struct imap_value *list = fetch_list(r);
	size_t len[16], left = n;

	g_return_if_fail(n <= G_N_ELEMENTS(len));
	for (size_t j = 0; j < n; j++) {
		out[j] = NULL;
		len[j] = strlen(names[j]);
	}
	for (size_t i = 0; list && left > 0 && i + 1 < list->n; i += 2) {
		const struct imap_value *item = &list->items[i];

		if (item->type != IMAP_V_ATOM)
			continue;
		/* The lengths first: most names differ in length. */
		for (size_t j = 0; j < n; j++) {
			if (!out[j] && item->len == len[j] &&
			    ascii_caseeq(item->str, names[j], len[j])) {
				out[j] = &list->items[i + 1];
				left--;
				break;
			}
		}
	}
}
