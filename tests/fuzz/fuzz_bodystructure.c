/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * BODYSTRUCTURE fuzzer. The input is IMAP response bytes; every FETCH
 * response with a BODYSTRUCTURE (or BODY) item is read into a structure,
 * which must then hold together: parents and children agree, sections
 * follow the numbering of the header, the bounds hold, every section is
 * found again. The parser's depth limit is above MIME_DEPTH_MAX, so the
 * structure's own bound is what stops deep inputs.
 */
#include "fuzz.h"
#include "protocol/imap_bodystructure.h"

#include <gio/gio.h>
#include <string.h>

static char *child_section(const char *parent, guint i)
{
	return *parent ? g_strdup_printf("%s.%u", parent, i) : g_strdup_printf("%u", i);
}

/* Walks the tree without recursion; returns the number of parts. */
static guint check_tree(const struct mime_structure *s)
{
	GPtrArray *stack = g_ptr_array_new();
	GArray *depths = g_array_new(FALSE, FALSE, sizeof(guint));
	guint n = 0, one = 1;

	g_ptr_array_add(stack, s->root);
	g_array_append_val(depths, one);
	while (stack->len > 0) {
		const struct mime_part *p = g_ptr_array_steal_index(stack, stack->len - 1);
		guint depth = g_array_index(depths, guint, depths->len - 1);
		const struct mime_part *found;

		g_array_set_size(depths, depths->len - 1);
		n++;
		CHECK(depth <= MIME_DEPTH_MAX);
		CHECK(p->section && p->type && p->subtype && p->encoding);
		CHECK(p->params && p->disp_params && p->children);
		for (const char *c = p->type; *c; c++)
			CHECK(!g_ascii_isupper(*c));
		for (const char *c = p->subtype; *c; c++)
			CHECK(!g_ascii_isupper(*c));
		CHECK(p->disposition || p->disp_params->len == 0);
		for (guint i = 0; i < p->params->len; i++) {
			const struct mime_param *prm = p->params->pdata[i];

			CHECK(prm->name && prm->value);
			CHECK(mime_param_get(p->params, prm->name) != NULL);
		}
		found = mime_structure_find(s, p->section);
		CHECK(found && strcmp(found->section, p->section) == 0);
		if (strcmp(p->type, "multipart") != 0)
			CHECK(p->children->len <= 1);
		for (guint i = 0; i < p->children->len; i++) {
			struct mime_part *c = p->children->pdata[i];
			guint d = depth + 1;

			CHECK(c->parent == p);
			if (strcmp(p->type, "multipart") == 0) {
				char *want = child_section(p->section, i + 1);

				CHECK(strcmp(c->section, want) == 0);
				g_free(want);
			} else {
				char *one_part = child_section(p->section, 1);

				CHECK(strcmp(p->type, "message") == 0);
				CHECK(strcmp(c->section, p->section) == 0 ||
				      strcmp(c->section, one_part) == 0);
				g_free(one_part);
			}
			g_ptr_array_add(stack, c);
			g_array_append_val(depths, d);
		}
	}
	g_ptr_array_unref(stack);
	g_array_unref(depths);
	return n;
}

static void check_value(const struct imap_value *v)
{
	GError *err = NULL;
	struct mime_structure *s;

	if (!v)
		return;
	s = mime_structure_from_bodystructure(v, &err);
	if (!s) {
		CHECK(err && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
		g_error_free(err);
		return;
	}
	CHECK(!err && s->root && !s->root->parent);
	CHECK(s->nparts >= 1 && s->nparts <= MIME_PARTS_MAX);
	CHECK(check_tree(s) == s->nparts);
	/* "" for a multipart message, "1" for one that is a single part. */
	CHECK(strcmp(s->root->section, "") == 0 || strcmp(s->root->section, "1") == 0);
	if (s->root->children->len > 0 && strcmp(s->root->type, "multipart") == 0)
		CHECK(strcmp(s->root->section, "") == 0);
	(void)mime_structure_find(s, "1.2.3");
	(void)mime_param_get(s->root->params, "boundary");
	mime_structure_free(s);
}

static void on_response(void *ud, struct imap_response *r)
{
	(void)ud;
	check_value(imap_fetch_item(r, "BODYSTRUCTURE"));
	check_value(imap_fetch_item(r, "BODY"));
	imap_response_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imap_parser_callbacks cb = {.response = on_response};
	struct imap_limits lim;
	struct imap_parser *p;
	GError *err = NULL;

	imap_limits_init_default(&lim);
	lim.max_depth = MIME_DEPTH_MAX * 2 + 8;
	lim.max_elements = 20000;
	lim.max_inline_literal = 4096;
	lim.max_inline_total = 65536;
	p = imap_parser_new(&lim, &cb, NULL);
	if (imap_parser_feed(p, data, size, &err) < 0)
		g_error_free(err);
	imap_parser_free(p);
	return 0;
}
