/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/mime_view.h"

#include <gmime/gmime.h>
#include <stdint.h>
#include <string.h>

#include "model/headers.h"
#include "model/names.h"

#define NAME_MAX_BYTES 255
/* An "extension" longer than this is part of the name, not kept whole
   when a name is cut. */
#define EXT_MAX 32

void mime_entry_free(struct mime_entry *e)
{
	if (!e)
		return;
	g_free(e->name);
	g_free(e->section);
	g_free(e);
}

static void entry_free(gpointer e)
{
	mime_entry_free(e);
}

static struct mime_entry *entry_add(GPtrArray *out, char *name, enum mime_entry_kind kind,
				    const struct mime_part *part, char *section)
{
	struct mime_entry *e = g_new0(struct mime_entry, 1);

	e->name = name;
	e->kind = kind;
	e->part = part;
	e->section = section;
	g_ptr_array_add(out, e);
	return e;
}

static gboolean is_type(const struct mime_part *p, const char *type, const char *subtype)
{
	return g_strcmp0(p->type, type) == 0 && (!subtype || g_strcmp0(p->subtype, subtype) == 0);
}

static gboolean is_message(const struct mime_part *p)
{
	return is_type(p, "message", "rfc822");
}

/*
 * The value of parameter name, RFC 2231 and RFC 2047 decoded: the raw
 * parameters that make it (name, name*, name*0, name*0*, ...) are written
 * back as one parameter list and read by GMime.
 */
static char *param_decoded(const GPtrArray *params, const char *name)
{
	gsize n = strlen(name);
	GString *list = g_string_new(NULL);
	GMimeParamList *parsed;
	GMimeParam *param;
	char *out = NULL;

	for (guint i = 0; params && i < params->len; i++) {
		const struct mime_param *p = params->pdata[i];

		if (!p->name || !p->value || g_ascii_strncasecmp(p->name, name, n) != 0 ||
		    (p->name[n] != '\0' && p->name[n] != '*'))
			continue;
		g_string_append_printf(list, "%s%s=\"", list->len ? "; " : "", p->name);
		for (const char *c = p->value; *c; c++) {
			if (*c == '"' || *c == '\\')
				g_string_append_c(list, '\\');
			if (*c != '\r' && *c != '\n')
				g_string_append_c(list, *c);
		}
		g_string_append_c(list, '"');
	}
	if (list->len == 0) {
		g_string_free(list, TRUE);
		return NULL;
	}
	parsed = g_mime_param_list_parse(mail_gmime_options(), list->str);
	param = parsed ? g_mime_param_list_get_parameter(parsed, name) : NULL;
	if (param && g_mime_param_get_value(param))
		out = g_strdup(g_mime_param_get_value(param));
	if (parsed)
		g_object_unref(parsed);
	g_string_free(list, TRUE);
	if (out && !g_utf8_validate(out, -1, NULL)) {
		char *valid = g_utf8_make_valid(out, -1);

		g_free(out);
		out = valid;
	}
	return out;
}

char *mime_part_filename(const struct mime_part *p)
{
	char *name;

	if (!p)
		return NULL;
	name = param_decoded(p->disp_params, "filename");
	if (!name || !*name) {
		g_free(name);
		name = param_decoded(p->params, "name");
	}
	if (name && !*name)
		g_clear_pointer(&name, g_free);
	return name;
}

static gboolean is_attachment(const struct mime_part *p)
{
	char *name;

	if (g_strcmp0(p->disposition, "attachment") == 0)
		return TRUE;
	name = mime_part_filename(p);
	g_free(name);
	return name != NULL;
}

/* The message's own body: the structure's root, or a message/rfc822
   part's one child (NULL when it has none). */
static const struct mime_part *message_body(const struct mime_structure *s,
					    const struct mime_part *msg)
{
	if (!msg)
		return s ? s->root : NULL;
	return msg->children->len > 0 ? msg->children->pdata[0] : NULL;
}

/* The message's own parts in depth-first order: leaves and message/rfc822
   parts, not what is inside the latter. Iterative: any depth. */
static GPtrArray *own_parts(const struct mime_structure *s, const struct mime_part *msg)
{
	GPtrArray *out = g_ptr_array_new();
	GPtrArray *todo = g_ptr_array_new();
	const struct mime_part *body = message_body(s, msg);

	if (body)
		g_ptr_array_add(todo, (gpointer)(uintptr_t)body);
	while (todo->len > 0) {
		const struct mime_part *p = g_ptr_array_steal_index(todo, todo->len - 1);

		if (is_message(p) || !is_type(p, "multipart", NULL)) {
			g_ptr_array_add(out, (gpointer)(uintptr_t)p);
			continue;
		}
		for (guint i = p->children->len; i > 0; i--)
			g_ptr_array_add(todo, p->children->pdata[i - 1]);
	}
	g_ptr_array_unref(todo);
	return out;
}

static const struct mime_part *first_readable(GPtrArray *parts, const char *subtype)
{
	for (guint i = 0; i < parts->len; i++) {
		const struct mime_part *p = parts->pdata[i];

		if (is_type(p, "text", subtype) && !is_attachment(p))
			return p;
	}
	return NULL;
}

/* The last path component of a filename ('/' and '\\' both end one). */
static const char *last_component(const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *bslash = strrchr(name, '\\');

	if (bslash && (!slash || bslash > slash))
		slash = bslash;
	return slash ? slash + 1 : name;
}

/* The length of s cut to at most max bytes, on a UTF-8 character
   boundary and not inside a %XX escape. */
static gsize cut_length(const char *s, gsize max)
{
	gsize n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && (s[n] & 0xc0) == 0x80)
		n--;
	if (n >= 1 && s[n - 1] == '%')
		n -= 1;
	else if (n >= 2 && s[n - 2] == '%')
		n -= 2;
	return n;
}

/* base + suffix + ext, base cut so that the whole fits NAME_MAX_BYTES. */
static char *compose(const char *base, gsize base_len, const char *suffix, const char *ext)
{
	gsize room = NAME_MAX_BYTES - strlen(suffix) - strlen(ext);
	char *b = g_strndup(base, base_len);
	gsize n = cut_length(b, room);
	char *out = g_strdup_printf("%.*s%s%s", (int)n, b, suffix, ext);

	g_free(b);
	return out;
}

/* A free name from escaped, taking it in taken: "~2", "~3", ... before the
   last extension when it is taken, cut to NAME_MAX_BYTES. tried remembers
   the last number tried for each name, so that 10,000 attachments of one
   name cost no more than 10,000 tries. */
static char *unique_name(const char *escaped, GHashTable *taken, GHashTable *tried)
{
	const char *dot = strrchr(escaped, '.');
	gsize base_len;
	const char *ext;
	char *name;

	if (!dot || dot == escaped || strlen(dot) > EXT_MAX)
		dot = escaped + strlen(escaped);
	base_len = (gsize)(dot - escaped);
	ext = dot;
	name = compose(escaped, base_len, "", ext);
	guint n = GPOINTER_TO_UINT(g_hash_table_lookup(tried, escaped));

	for (n = MAX(n, 1) + 1; g_hash_table_contains(taken, name); n++) {
		char suffix[16];

		g_snprintf(suffix, sizeof(suffix), "~%u", n);
		g_free(name);
		name = compose(escaped, base_len, suffix, ext);
		g_hash_table_insert(tried, g_strdup(escaped), GUINT_TO_POINTER(n));
	}
	g_hash_table_add(taken, g_strdup(name));
	return name;
}

static char *attachment_name(const struct mime_part *p, GHashTable *taken, GHashTable *tried)
{
	char *filename = mime_part_filename(p);
	const char *last = filename ? last_component(filename) : NULL;
	char *escaped, *name;

	if (last && *last)
		escaped = names_escape(last, strlen(last));
	else
		escaped = g_strdup_printf("part-%s", p->section);
	name = unique_name(escaped, taken, tried);
	g_free(escaped);
	g_free(filename);
	return name;
}

/* "HEADER", or "S.HEADER" for a message/rfc822 part S. */
static char *header_section(const struct mime_part *msg)
{
	return msg ? g_strdup_printf("%s.HEADER", msg->section) : g_strdup("HEADER");
}

GPtrArray *mime_view_message(const struct mime_structure *s, const struct mime_part *msg)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(entry_free);
	GPtrArray *parts = own_parts(s, msg);
	GHashTable *taken = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GHashTable *tried = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	const struct mime_part *plain = first_readable(parts, "plain");
	const struct mime_part *html = first_readable(parts, "html");
	const struct mime_part *text = plain ? plain : html;

	if (text) {
		struct mime_entry *e = entry_add(out, g_strdup("text"), MIME_ENTRY_TEXT, text,
						 g_strdup(text->section));

		e->html_as_text = text == html;
		g_hash_table_add(taken, g_strdup("text"));
	}
	if (html) {
		entry_add(out, g_strdup("html"), MIME_ENTRY_HTML, html, g_strdup(html->section));
		g_hash_table_add(taken, g_strdup("html"));
	}
	entry_add(out, g_strdup("headers"), MIME_ENTRY_HEADERS, msg, header_section(msg));
	g_hash_table_add(taken, g_strdup("headers"));
	/* parts/ comes last but is always there: no attachment may take it. */
	g_hash_table_add(taken, g_strdup("parts"));
	for (guint i = 0; i < parts->len; i++) {
		const struct mime_part *p = parts->pdata[i];

		if (p == text || p == html || !is_attachment(p))
			continue;
		entry_add(out, attachment_name(p, taken, tried), MIME_ENTRY_ATTACHMENT, p,
			  g_strdup(p->section));
	}
	entry_add(out, g_strdup("parts"), MIME_ENTRY_PARTS_DIR, msg,
		  g_strdup(msg ? msg->section : ""));
	g_hash_table_unref(taken);
	g_hash_table_unref(tried);
	g_ptr_array_unref(parts);
	return out;
}

GPtrArray *mime_view_parts(const struct mime_structure *s, const struct mime_part *msg)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(entry_free);
	GPtrArray *parts = own_parts(s, msg);

	for (guint i = 0; i < parts->len; i++) {
		const struct mime_part *p = parts->pdata[i];

		entry_add(out, names_escape(p->section, strlen(p->section)),
			  is_message(p) ? MIME_ENTRY_MESSAGE_DIR : MIME_ENTRY_PART, p,
			  g_strdup(p->section));
	}
	g_ptr_array_unref(parts);
	return out;
}

const struct mime_entry *mime_view_find(const GPtrArray *entries, const char *name)
{
	for (guint i = 0; entries && name && i < entries->len; i++) {
		const struct mime_entry *e = entries->pdata[i];

		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}
