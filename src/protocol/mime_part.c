/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The building blocks of struct mime_part (protocol/imap_bodystructure.h),
 * shared by the BODYSTRUCTURE reader and model/mime_local.c.
 */
#include "protocol/imap_bodystructure.h"

#include <string.h>

static void param_free(gpointer data)
{
	struct mime_param *p = data;

	g_free(p->name);
	g_free(p->value);
	g_free(p);
}

struct mime_part *mime_part_new(const char *section, const char *type, const char *subtype)
{
	struct mime_part *p = g_new0(struct mime_part, 1);

	p->section = g_strdup(section);
	p->type = g_ascii_strdown(type, -1);
	p->subtype = g_ascii_strdown(subtype, -1);
	p->params = g_ptr_array_new_with_free_func(param_free);
	p->disp_params = g_ptr_array_new_with_free_func(param_free);
	p->children = g_ptr_array_new();
	p->encoding = g_strdup("7bit");
	return p;
}

void mime_part_add_child(struct mime_part *parent, struct mime_part *child)
{
	child->parent = parent;
	g_ptr_array_add(parent->children, child);
}

/* Iterative, so that a structure of any depth cannot exhaust the stack. */
void mime_part_free(struct mime_part *p)
{
	GPtrArray *todo;

	if (!p)
		return;
	todo = g_ptr_array_new();
	g_ptr_array_add(todo, p);
	while (todo->len > 0) {
		struct mime_part *q = g_ptr_array_steal_index_fast(todo, todo->len - 1);

		for (guint i = 0; i < q->children->len; i++)
			g_ptr_array_add(todo, q->children->pdata[i]);
		g_free(q->section);
		g_free(q->type);
		g_free(q->subtype);
		g_ptr_array_unref(q->params);
		g_free(q->id);
		g_free(q->description);
		g_free(q->encoding);
		g_free(q->disposition);
		g_ptr_array_unref(q->disp_params);
		g_ptr_array_unref(q->children);
		g_free(q);
	}
	g_ptr_array_unref(todo);
}

void mime_structure_free(struct mime_structure *s)
{
	if (!s)
		return;
	mime_part_free(s->root);
	g_free(s);
}

const char *mime_param_get(const GPtrArray *params, const char *name)
{
	if (!params || !name)
		return NULL;
	for (guint i = 0; i < params->len; i++) {
		const struct mime_param *p = params->pdata[i];

		if (p->name && g_ascii_strcasecmp(p->name, name) == 0)
			return p->value;
	}
	return NULL;
}

/* Depth-first, parents before children: a message/rfc822 part comes before
   a multipart body that shares its number. */
const struct mime_part *mime_structure_find(const struct mime_structure *s, const char *section)
{
	GPtrArray *todo;
	const struct mime_part *found = NULL;

	if (!s || !s->root || !section)
		return NULL;
	todo = g_ptr_array_new();
	g_ptr_array_add(todo, s->root);
	while (todo->len > 0 && !found) {
		const struct mime_part *q = g_ptr_array_steal_index(todo, todo->len - 1);

		if (strcmp(q->section, section) == 0) {
			found = q;
			break;
		}
		for (guint i = q->children->len; i > 0; i--)
			g_ptr_array_add(todo, q->children->pdata[i - 1]);
	}
	g_ptr_array_unref(todo);
	return found;
}
