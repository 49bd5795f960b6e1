/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * IMAP response parser fuzzer. The input is parsed twice with small limits:
 * all at once, and in pieces whose sizes derive from the input (pausing now
 * and then); both runs must give the same responses, literal bytes and error.
 * Literals alternate between streamed and buffered. Each response also goes
 * through imap_objid (its id is part of the output compared).
 */
#include "fuzz.h"
#include "protocol/imap_objid.h"
#include "protocol/imap_parse.h"

#include <stdlib.h>
#include <string.h>

struct fz {
	GString *out;
	struct imap_parser *p;
	unsigned literals;
	unsigned responses;
	gboolean pausing;
	uint64_t announced, received;
	const char *lo, *hi;
};

static void dump_value(GString *o, const struct imap_value *v)
{
	switch (v->type) {
	case IMAP_V_ATOM:
	case IMAP_V_STRING:
		if (v->str[v->len] != '\0')
			abort();
		g_string_append_printf(o, "%c%zu:", v->type == IMAP_V_ATOM ? 'a' : 's', v->len);
		g_string_append_len(o, v->str, (gssize)v->len);
		break;
	case IMAP_V_NIL:
		g_string_append(o, "N");
		break;
	case IMAP_V_STREAMED:
		g_string_append_printf(o, "<%" G_GUINT64_FORMAT ">", v->literal_size);
		break;
	case IMAP_V_LIST:
		g_string_append_c(o, '(');
		for (size_t i = 0; i < v->n; i++)
			dump_value(o, &v->items[i]);
		g_string_append_c(o, ')');
		break;
	}
}

static void on_response(void *ud, struct imap_response *r)
{
	struct fz *f = ud;
	uint32_t u32;
	uint64_t u64;
	char objid[IMAP_OBJID_MAX];
	size_t objid_len;

	g_string_append_printf(f->out, "R%d %s %d %d %u %s [%s ", r->type, r->tag ? r->tag : "-",
			       r->status, r->has_number, r->number, r->keyword ? r->keyword : "-",
			       r->code ? r->code : "-");
	dump_value(f->out, &r->code_args);
	g_string_append_printf(f->out, " %s] %s ", r->code_text ? r->code_text : "-",
			       r->text ? r->text : "-");
	dump_value(f->out, &r->args);
	objid_len = imap_objid_from_fetch(r, objid);
	if (objid_len != strlen(objid) || objid_len >= IMAP_OBJID_MAX)
		abort();
	g_string_append_printf(f->out, " id=%s", objid);
	g_string_append_c(f->out, '\n');
	for (size_t i = 0; i < r->args.n; i++) {
		(void)imap_value_u32(&r->args.items[i], &u32);
		(void)imap_value_u64(&r->args.items[i], &u64);
		(void)imap_value_str(&r->args.items[i]);
		(void)imap_value_is_atom(&r->args.items[i], "FETCH");
	}
	imap_response_free(r);
	if (f->pausing && ++f->responses % 3 == 0)
		imap_parser_pause(f->p);
}

static gboolean on_literal_begin(void *ud, const struct imap_literal_ctx *ctx, uint64_t size)
{
	struct fz *f = ud;
	gboolean stream = f->literals++ % 2 == 0;

	g_string_append_printf(f->out, "{%" G_GUINT64_FORMAT " %s %u %d %s}", size,
			       ctx->prev_atom ? ctx->prev_atom : "-", ctx->depth, ctx->literal8,
			       ctx->resp->keyword ? ctx->resp->keyword : "-");
	if (stream) {
		f->announced = size;
		f->received = 0;
	}
	return stream;
}

static void on_literal_chunk(void *ud, const void *data, size_t len)
{
	struct fz *f = ud;
	const char *d = data;

	if (len == 0 || d < f->lo || d + len > f->hi)
		abort();
	f->received += len;
	g_string_append_len(f->out, d, (gssize)len);
}

static void on_literal_end(void *ud)
{
	struct fz *f = ud;

	if (f->received != f->announced)
		abort();
	g_string_append(f->out, "{end}");
}

static const struct imap_parser_callbacks fz_cb = {
	.response = on_response,
	.literal_begin = on_literal_begin,
	.literal_chunk = on_literal_chunk,
	.literal_end = on_literal_end,
};

static GString *parse(const uint8_t *data, size_t size, uint32_t seed)
{
	struct imap_limits lim;
	struct fz f = { 0 };
	size_t pos = 0;

	imap_limits_init_default(&lim);
	lim.max_line = 512;
	lim.max_depth = 8;
	lim.max_elements = 64;
	lim.max_literal = 4096;
	lim.max_inline_literal = 64;
	lim.max_inline_total = 128;
	f.out = g_string_new(NULL);
	f.pausing = seed != 0;
	f.p = imap_parser_new(&lim, &fz_cb, &f);
	while (pos < size) {
		size_t n = size - pos;
		GError *err = NULL;
		gssize got;

		if (seed) {
			/* xorshift32: piece sizes 1..16, from the input's hash */
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			n = MIN(n, 1 + seed % 16);
		}
		f.lo = (const char *)data + pos;
		f.hi = f.lo + n;
		got = imap_parser_feed(f.p, data + pos, n, &err);
		if (got < 0) {
			if (!err || err->domain != IMAP_PARSE_ERROR)
				abort();
			g_string_append_printf(f.out, "E%d %s", err->code, err->message);
			g_error_free(err);
			break;
		}
		if ((size_t)got > n || (!f.pausing && (size_t)got != n))
			abort();
		pos += (size_t)got;
	}
	if (pos == size && imap_parser_in_response(f.p))
		g_string_append(f.out, "[partial]");
	imap_parser_free(f.p);
	return f.out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed = 2166136261u;
	GString *whole, *pieces;

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	if (seed == 0)
		seed = 1;
	whole = parse(data, size, 0);
	pieces = parse(data, size, seed);
	if (!g_string_equal(whole, pieces))
		abort();
	g_string_free(whole, TRUE);
	g_string_free(pieces, TRUE);
	return 0;
}
