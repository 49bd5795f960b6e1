/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * search_query_parse() and imap_search_render() on arbitrary bytes: never
 * crash; a refusal always says its column; an accepted query has at most
 * SEARCH_QUERY_TERMS_MAX leaves, non-empty folder: values, and renders to
 * text parts of printable ASCII only (8-bit strings go as literals, under
 * CHARSET UTF-8).
 */
#include "fuzz.h"
#include "model/search_query.h"
#include "protocol/imap_search.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static guint leaves(const struct imap_search_key *k)
{
	guint n = 0;

	if (!k->kids)
		return 1;
	CHECK(k->kids->len >= 1);
	CHECK(k->op != IMAP_SK_NOT || k->kids->len == 1);
	for (guint i = 0; i < k->kids->len; i++)
		n += leaves(g_ptr_array_index(k->kids, i));
	return n;
}

static void check_render(const struct imap_search_key *key, gboolean return_all)
{
	struct imap_search_text t;
	gboolean literal = FALSE;

	imap_search_render(key, return_all, &t);
	CHECK(t.display != NULL && t.parts->len > 0);
	for (guint i = 0; i < t.parts->len; i++) {
		const struct imap_part *p = &g_array_index(t.parts, struct imap_part, i);

		CHECK(p->len > 0);
		if (p->literal) {
			literal = TRUE;
			continue;
		}
		for (gsize j = 0; j < p->len; j++)
			CHECK(p->data[j] >= 0x20 && p->data[j] < 0x7f);
	}
	if (literal)
		CHECK(strstr(t.display, "CHARSET UTF-8 ") != NULL);
	CHECK(g_str_has_prefix(t.display, return_all ? "RETURN (ALL) " : ""));
	imap_search_text_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *text = g_strndup((const char *)data, size);
	GError *err = NULL;
	struct search_query *q = search_query_parse(text, &err);

	if (!q) {
		CHECK(err != NULL && g_str_has_prefix(err->message, "column "));
		g_error_free(err);
		return 0;
	}
	CHECK(err == NULL);
	if (q->key)
		CHECK(leaves(q->key) <= SEARCH_QUERY_TERMS_MAX);
	for (guint i = 0; i < q->folders->len; i++)
		CHECK(*(const char *)g_ptr_array_index(q->folders, i) != '\0');
	check_render(q->key, FALSE);
	check_render(q->key, TRUE);
	search_query_free(q);
	return 0;
}
