/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * LIST of the personal namespace (protocol/imap_client.h, "mailboxes"):
 * the command and the reading of its answers, on the session's public
 * calls; and the reading of a STATUS answer (a mailbox's state).
 */
#include "protocol/imap_client.h"

#include <string.h>

#include "util/log.h"

void imap_mailbox_info_free(struct imap_mailbox_info *m)
{
	if (!m)
		return;
	g_free(m->name);
	g_free(m);
}

/* The bit of a mailbox attribute the server sent (case-insensitive), 0 if unknown. */
static guint32 mbox_attr(const char *a)
{
	static const struct {
		const char *name;
		guint32 bit;
	} table[] = {
		{ "\\NOSELECT", IMAP_MBOX_NOSELECT },
		{ "\\NONEXISTENT", IMAP_MBOX_NOSELECT },
		{ "\\HASCHILDREN", IMAP_MBOX_HASCHILDREN },
		{ "\\HASNOCHILDREN", IMAP_MBOX_HASNOCHILDREN },
		{ "\\NOINFERIORS", IMAP_MBOX_NOINFERIORS },
		{ "\\ALL", IMAP_MBOX_ALL },
		{ "\\ARCHIVE", IMAP_MBOX_ARCHIVE },
		{ "\\DRAFTS", IMAP_MBOX_DRAFTS },
		{ "\\FLAGGED", IMAP_MBOX_FLAGGED },
		{ "\\JUNK", IMAP_MBOX_JUNK },
		{ "\\SENT", IMAP_MBOX_SENT },
		{ "\\TRASH", IMAP_MBOX_TRASH },
		{ "\\IMPORTANT", IMAP_MBOX_IMPORTANT },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
		if (g_ascii_strcasecmp(a, table[i].name) == 0)
			return table[i].bit;
	return 0;
}

static void on_list(void *ud, const struct imap_response *r)
{
	GPtrArray *out = ud;
	const struct imap_value *a = &r->args;
	struct imap_mailbox_info *m;
	const char *name, *delim;

	if (!r->keyword || strcmp(r->keyword, "LIST") != 0)
		return;
	if (a->n < 3 || a->items[0].type != IMAP_V_LIST ||
	    (a->items[1].type != IMAP_V_NIL && a->items[1].type != IMAP_V_STRING &&
	     a->items[1].type != IMAP_V_ATOM) ||
	    !(name = imap_value_str(&a->items[2])) || strlen(name) != a->items[2].len ||
	    !*name) {
		mfs_log_warn("malformed LIST response skipped");
		return;
	}
	delim = imap_value_str(&a->items[1]);
	m = g_new0(struct imap_mailbox_info, 1);
	/* INBOX is case-insensitive (RFC 3501 §5.1). */
	m->name = g_ascii_strcasecmp(name, "INBOX") == 0 ? g_strdup("INBOX") : g_strdup(name);
	m->delimiter = delim && strlen(delim) == 1 ? delim[0] : 0;
	for (size_t i = 0; i < a->items[0].n; i++) {
		const char *attr = imap_value_str(&a->items[0].items[i]);

		if (attr)
			m->attrs |= mbox_attr(attr);
	}
	g_ptr_array_add(out, m);
}

GPtrArray *imap_list_mailboxes(struct imap_session *s, GError **err)
{
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)imap_mailbox_info_free);
	struct imap_handler h = { .untagged = on_list, .ud = out };
	const char *cmd = imap_session_has(s, IMAP_CAP_LIST_EXTENDED) &&
					  imap_session_has(s, IMAP_CAP_SPECIAL_USE) ?
				  "LIST \"\" \"*\" RETURN (SPECIAL-USE)" :
				  "LIST \"\" \"*\"";

	if (imap_run(s, &h, NULL, err, "%s", cmd) < 0) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

gboolean imap_status_parse(const struct imap_response *r, const char **mailbox,
			   struct imap_select_info *out)
{
	const struct imap_value *a = &r->args;
	const struct imap_value *attrs;
	const char *name;
	gboolean validity = FALSE, next = FALSE, messages = FALSE;

	memset(out, 0, sizeof(*out));
	if (!r->keyword || strcmp(r->keyword, "STATUS") != 0 || a->n < 2 ||
	    !(name = imap_value_str(&a->items[0])) || strlen(name) != a->items[0].len || !*name ||
	    a->items[1].type != IMAP_V_LIST)
		return FALSE;
	attrs = &a->items[1];
	for (size_t i = 0; i + 1 < attrs->n; i += 2) {
		const struct imap_value *k = &attrs->items[i], *v = &attrs->items[i + 1];

		if (imap_value_is_atom(k, "UIDVALIDITY"))
			validity = imap_value_u32(v, &out->uidvalidity);
		else if (imap_value_is_atom(k, "UIDNEXT"))
			next = imap_value_u32(v, &out->uidnext);
		else if (imap_value_is_atom(k, "MESSAGES"))
			messages = imap_value_u32(v, &out->exists);
		else if (imap_value_is_atom(k, "HIGHESTMODSEQ") &&
			 !imap_value_u64(v, &out->highestmodseq))
			out->highestmodseq = 0;
	}
	if (!validity || !next || !messages) {
		memset(out, 0, sizeof(*out));
		return FALSE;
	}
	/* INBOX is case-insensitive (RFC 3501 §5.1). */
	*mailbox = g_ascii_strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
	return TRUE;
}
