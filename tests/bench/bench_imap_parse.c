/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_imap_parse: throughput of the IMAP response parser on a dovecot-shaped
 * FETCH stream of 10,000 messages with BODY[] literals, bodies streamed through
 * literal_chunk (zero copy). The stream is built in memory, then parsed from
 * memory in pieces of a TLS record (16 KiB) and of a large read (64 KiB);
 * prints the best of 5 runs in MB/s (10^6 bytes per second). As literal bytes
 * are only handed over, that figure mostly measures the response lines: a
 * second stream without bodies (a listing: UID, FLAGS, MODSEQ, RFC822.SIZE,
 * INTERNALDATE) gives the rate for lines alone, in responses per second.
 *
 *   bench_imap_parse [messages]
 */
#include "protocol/imap_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 5

struct counts {
	unsigned responses;
	uint64_t body_bytes;
	uint64_t chunks;
};

static void on_response(void *ud, struct imap_response *r)
{
	struct counts *c = ud;

	c->responses++;
	imap_response_free(r);
}

static gboolean on_literal_begin(void *ud, const struct imap_literal_ctx *ctx, uint64_t size)
{
	(void)ud;
	(void)size;
	return ctx->prev_atom && g_str_has_prefix(ctx->prev_atom, "BODY[");
}

static void on_literal_chunk(void *ud, const void *data, size_t len)
{
	struct counts *c = ud;

	(void)data;
	c->body_bytes += len;
	c->chunks++;
}

static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* Mostly 2-20 KB, a few larger ones with attachments, as a real mailbox. */
static size_t message_size(uint32_t *s)
{
	uint32_t r = rnd(s);

	if (r % 50 == 0)
		return 50000 + rnd(s) % 150000;
	return 2000 + rnd(s) % 18000;
}

static void append_body(GString *o, unsigned n, size_t size)
{
	static const char *const lines[] = {
		"Thanks for the notes from Tuesday. I went through the list again and",
		"think we can close the first two items before the end of the week.",
		"The build server was down for about an hour this morning (disk full);",
		"it is back now, and I added a cron job that cleans the old artifacts.",
		"> On 25 Nov 2026, at 17:02, Bob Example <bob@example.org> wrote:",
		"> Could you send me the figures for the third quarter as well?",
		"",
		"Best regards,",
		"Alice",
	};
	size_t start = o->len, i = 0;

	g_string_append_printf(o,
			       "Return-Path: <alice@example.org>\r\n"
			       "Delivered-To: bob@example.org\r\n"
			       "Received: from mx.example.org by imap.example.org with LMTP id %u;"
			       " Thu, 26 Nov 2026 10:00:00 +0000\r\n"
			       "Message-ID: <%u.1764151200@example.org>\r\n"
			       "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
			       "From: Alice Example <alice@example.org>\r\n"
			       "To: Bob Example <bob@example.org>\r\n"
			       "Subject: Re: Meeting notes for Tuesday (%u)\r\n"
			       "MIME-Version: 1.0\r\n"
			       "Content-Type: text/plain; charset=utf-8\r\n"
			       "Content-Transfer-Encoding: 8bit\r\n\r\n",
			       n, n, n);
	while (o->len - start < size) {
		g_string_append(o, lines[i++ % G_N_ELEMENTS(lines)]);
		g_string_append(o, "\r\n");
	}
	g_string_truncate(o, start + size);
}

static GString *build_stream(unsigned messages, uint64_t *body_total)
{
	GString *o = g_string_sized_new((gsize)messages * 12000);
	uint32_t seed = 42;

	*body_total = 0;
	for (unsigned n = 1; n <= messages; n++) {
		size_t size = message_size(&seed);

		g_string_append_printf(o,
				       "* %u FETCH (UID %u RFC822.SIZE %zu FLAGS (\\Seen) "
				       "INTERNALDATE \"26-Nov-2026 10:00:00 +0000\" BODY[] {%zu}\r\n",
				       n, n + 1000, size, size);
		append_body(o, n, size);
		g_string_append(o, ")\r\n");
		*body_total += size;
	}
	g_string_append(o, "f1 OK Fetch completed (0.120 + 0.000 + 0.119 secs).\r\n");
	return o;
}

static GString *build_listing(unsigned messages)
{
	GString *o = g_string_sized_new((gsize)messages * 120);

	for (unsigned n = 1; n <= messages; n++)
		g_string_append_printf(o,
				       "* %u FETCH (UID %u MODSEQ (%u) FLAGS (\\Seen $Work) "
				       "RFC822.SIZE %u INTERNALDATE \"26-Nov-2026 10:00:00 +0000\")\r\n",
				       n, n + 1000, 90000 + n, 2000 + n % 18000);
	g_string_append(o, "f2 OK Fetch completed (0.020 + 0.000 + 0.019 secs).\r\n");
	return o;
}

static double parse_once(const GString *in, size_t piece, unsigned messages, uint64_t body_total)
{
	static const struct imap_parser_callbacks cb = {
		.response = on_response,
		.literal_begin = on_literal_begin,
		.literal_chunk = on_literal_chunk,
	};
	struct counts c = { 0 };
	struct imap_parser *p = imap_parser_new(NULL, &cb, &c);
	gint64 t0 = g_get_monotonic_time(), t1;
	GError *err = NULL;

	for (size_t pos = 0; pos < in->len; pos += piece) {
		size_t n = MIN(piece, in->len - pos);

		if (imap_parser_feed(p, in->str + pos, n, &err) != (gssize)n) {
			fprintf(stderr, "bench_imap_parse: %s\n", err ? err->message : "paused?");
			exit(1);
		}
	}
	t1 = g_get_monotonic_time();
	imap_parser_free(p);
	if (c.responses != messages + 1 || c.body_bytes != body_total) {
		fprintf(stderr, "bench_imap_parse: wrong result: %u responses, %" G_GUINT64_FORMAT
				" body bytes\n", c.responses, c.body_bytes);
		exit(1);
	}
	return (double)(t1 - t0) / 1e6;
}

int main(int argc, char **argv)
{
	static const size_t pieces[] = { 16384, 65536 };
	unsigned messages = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 10000;
	uint64_t body_total;
	GString *in;

	if (messages == 0)
		messages = 10000;
	in = build_stream(messages, &body_total);
	printf("stream: %u FETCH responses, %.1f MB (%.1f MB of BODY[] literals)\n", messages,
	       (double)in->len / 1e6, (double)body_total / 1e6);
	for (size_t i = 0; i < G_N_ELEMENTS(pieces); i++) {
		double best = 1e9;

		for (int r = 0; r < RUNS; r++) {
			double t = parse_once(in, pieces[i], messages, body_total);

			best = MIN(best, t);
		}
		printf("feed %6zu-byte pieces: best of %d: %.4f s, %.0f MB/s\n", pieces[i], RUNS,
		       best, (double)in->len / 1e6 / best);
	}
	g_string_free(in, TRUE);

	in = build_listing(messages);
	{
		double best = 1e9;

		for (int r = 0; r < RUNS; r++)
			best = MIN(best, parse_once(in, 65536, messages, 0));
		printf("listing without bodies (%.1f MB): best of %d: %.4f s, %.0f MB/s, "
		       "%.2f M responses/s\n", (double)in->len / 1e6, RUNS, best,
		       (double)in->len / 1e6 / best, (messages + 1) / best / 1e6);
	}
	g_string_free(in, TRUE);
	return 0;
}
