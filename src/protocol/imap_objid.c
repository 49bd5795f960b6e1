/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/imap_objid.h"

#include <string.h>

/* RFC 8474: objectid = 1*255(ALPHA / DIGIT / "_" / "-"). */
static gboolean objectid_ok(const char *s, size_t len)
{
	if (len == 0 || len > IMAP_OBJECTID_MAXLEN)
		return FALSE;
	for (size_t i = 0; i < len; i++)
		if (!g_ascii_isalnum(s[i]) && s[i] != '_' && s[i] != '-')
			return FALSE;
	return TRUE;
}

/* "EMAILID (M...)": a list of one atom. */
static size_t from_emailid(const struct imap_value *v, char out[IMAP_OBJID_MAX])
{
	const struct imap_value *id;

	if (v->type != IMAP_V_LIST || v->n != 1)
		return 0;
	id = &v->items[0];
	if (id->type != IMAP_V_ATOM || !objectid_ok(id->str, id->len))
		return 0;
	out[0] = 'E';
	memcpy(out + 1, id->str, id->len);
	out[1 + id->len] = '\0';
	return 1 + id->len;
}

size_t imap_objid_from_fetch(const struct imap_response *r, char out[IMAP_OBJID_MAX])
{
	const struct imap_value *v;
	guint64 msgid;
	int n;

	out[0] = '\0';
	v = imap_fetch_item(r, "EMAILID");
	if (v)
		return from_emailid(v, out);
	if (!imap_value_u64(imap_fetch_item(r, "X-GM-MSGID"), &msgid))
		return 0;
	/* At most 20 digits: always fits. */
	n = g_snprintf(out, IMAP_OBJID_MAX, "G%" G_GUINT64_FORMAT, msgid);
	return (size_t)n;
}
