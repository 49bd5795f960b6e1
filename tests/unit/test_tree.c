/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/tree.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>

#define NOSEL IMAP_MBOX_NOSELECT

struct mb {
	const char *name;
	char delim;
	guint32 attrs;
};

static GPtrArray *mk_list(const struct mb *mbs)
{
	GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)imap_mailbox_info_free);

	for (const struct mb *m = mbs; m && m->name; m++) {
		struct imap_mailbox_info *mi = g_new0(struct imap_mailbox_info, 1);

		mi->name = g_strdup(m->name);
		mi->delimiter = m->delim;
		mi->attrs = m->attrs;
		g_ptr_array_add(a, mi);
	}
	return a;
}

static void apply(struct tree *t, const struct mb *mbs, GArray *removed)
{
	g_autoptr(GPtrArray) l = mk_list(mbs);

	tree_apply_list(t, l, removed);
}

struct collect {
	GPtrArray *names;   /* char * */
	GArray *entries;    /* struct tree_entry (no strings) */
	GArray *offs;       /* guint64 next_off */
	guint limit;        /* stop after this many (0: no limit) */
	gboolean dots;      /* keep "." and ".." */
};

static gboolean collect_cb(void *ud, const char *name, const struct tree_entry *e,
			   guint64 next_off)
{
	struct collect *c = ud;

	if (c->limit && c->names->len >= c->limit)
		return FALSE;
	if (!c->dots && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
		return TRUE;
	g_ptr_array_add(c->names, g_strdup(name));
	g_array_append_val(c->entries, *e);
	g_array_append_val(c->offs, next_off);
	return TRUE;
}

static void collect_init(struct collect *c)
{
	memset(c, 0, sizeof(*c));
	c->names = g_ptr_array_new_with_free_func(g_free);
	c->entries = g_array_new(FALSE, FALSE, sizeof(struct tree_entry));
	c->offs = g_array_new(FALSE, FALSE, sizeof(guint64));
}

static void collect_clear(struct collect *c)
{
	g_ptr_array_unref(c->names);
	g_array_unref(c->entries);
	g_array_unref(c->offs);
}

/* All folder paths below ino, '*' after a folder without messages. */
static void walk(struct tree *t, guint64 ino, const char *prefix, GPtrArray *out)
{
	struct collect c;

	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, ino, 0, FALSE, collect_cb, &c), ==, 0);
	for (guint i = 0; i < c.names->len; i++) {
		const struct tree_entry *e = &g_array_index(c.entries, struct tree_entry, i);
		g_autofree char *p = NULL;

		if (e->kind != TREE_FOLDER)
			continue;
		p = *prefix ? g_strconcat(prefix, "/", g_ptr_array_index(c.names, i), NULL)
			    : g_strdup(g_ptr_array_index(c.names, i));
		g_ptr_array_add(out, g_strconcat(p, e->selectable ? "" : "*", NULL));
		walk(t, e->ino, p, out);
	}
	collect_clear(&c);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *tree_paths(struct tree *t)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);

	walk(t, TREE_ROOT_INO, "", out);
	g_ptr_array_sort(out, cmp_str);
	g_ptr_array_add(out, NULL);
	return g_strjoinv("|", (char **)out->pdata);
}

static guint64 path_ino(struct tree *t, const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "/", -1);
	guint64 ino = TREE_ROOT_INO;

	for (guint i = 0; parts[i]; i++) {
		struct tree_entry e;

		if (tree_lookup(t, ino, parts[i], FALSE, 0, &e) != 0)
			return 0;
		ino = e.ino;
	}
	return ino;
}

static const struct mb corpus[] = {
	{ "INBOX", '/', IMAP_MBOX_HASNOCHILDREN },
	{ "Archive", '/', IMAP_MBOX_HASCHILDREN },
	{ "Archive/2024", '/', 0 },
	{ "Archive/2024/Q1", '/', 0 },
	{ "Entw&APw-rfe", '/', IMAP_MBOX_DRAFTS },
	{ "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", '/', 0 },
	{ "Project X", '/', 0 },
	{ "Empty", '/', 0 },
	{ "Lists", '/', NOSEL },
	{ "Lists/debian", '/', 0 },
	{ "Trash", '/', IMAP_MBOX_TRASH },
	{ "Sent", '/', IMAP_MBOX_SENT },
	{ NULL, 0, 0 },
};

static const struct mb courier[] = {
	{ "INBOX", '.', 0 },
	{ "INBOX.Sent", '.', IMAP_MBOX_SENT },
	{ "INBOX.Drafts", '.', 0 },
	{ "INBOX.a.b", '.', 0 },
	{ NULL, 0, 0 },
};

static const struct mb nil_delim[] = {
	{ "a/b", 0, 0 },
	{ "x.y", 0, 0 },
	{ "INBOX", 0, 0 },
	{ NULL, 0, 0 },
};

static const struct mb odd[] = {
	{ "Bad&Jjo", '/', 0 },           /* unterminated shift: raw */
	{ "ctl\x01x", '/', 0 },         /* not printable: raw, escaped */
	{ "&-bad", '/', 0 },             /* "&bad" decoded ... */
	{ "&bad", '/', 0 },              /* ... and "&bad" raw: a duplicate */
	{ "..", '/', 0 },
	{ ".hidden", '/', 0 },
	{ "a/b", '.', 0 },
	{ "4711-x.eml", '/', 0 },
	{ "100%", '/', 0 },
	{ "x//y", '/', 0 },              /* an empty level */
	{ "Entw&APw-rfe/&Jjo", '/', 0 }, /* good parent, bad child */
	{ NULL, 0, 0 },
};

static const struct mb inbox_case[] = {
	{ "inbox", '/', 0 },
	{ "Inbox/x", '/', 0 },
	{ "INBOXES", '/', 0 },
	{ NULL, 0, 0 },
};

static const struct mb gmail[] = {
	{ "INBOX", '/', 0 },
	{ "[Gmail]", '/', NOSEL },
	{ "[Gmail]/All Mail", '/', IMAP_MBOX_ALL },
	{ "[Gmail]/Starred", '/', IMAP_MBOX_FLAGGED },
	{ "[Gmail]/Important", '/', IMAP_MBOX_IMPORTANT },
	{ "[Gmail]/Spam", '/', IMAP_MBOX_JUNK },
	{ "[Gmail]/Sent Mail", '/', IMAP_MBOX_SENT },
	{ "Archive", '/', 0 },
	{ "Archive/x", '/', 0 },
	{ "Arch", '/', 0 },
	{ "V", '/', IMAP_MBOX_ALL },
	{ "V/child", '/', 0 },
	{ NULL, 0, 0 },
};

static void test_list_table(void)
{
	static const char *const excl_gmail[] = { "[Gmail]/Spam", "Archive*", NULL };
	static const char *const excl_umlaut[] = { "Entwürfe", "Lists", NULL };
	static const struct {
		const struct mb *list;
		const char *const *exclude;
		gboolean vshow;
		const char *expect;
	} cases[] = {
		{ corpus, NULL, FALSE,
		  "Archive|Archive/2024|Archive/2024/Q1|Empty|Entwürfe|INBOX|Lists*|Lists/debian|"
		  "Project X|Sent|Trash|Отправленные" },
		{ corpus, excl_umlaut, FALSE,
		  "Archive|Archive/2024|Archive/2024/Q1|Empty|INBOX|Project X|Sent|Trash|"
		  "Отправленные" },
		{ courier, NULL, FALSE, "INBOX|INBOX/Drafts|INBOX/Sent|INBOX/a*|INBOX/a/b" },
		{ nil_delim, NULL, FALSE, "INBOX|a%2Fb|x.y" },
		{ odd, NULL, FALSE,
		  "%2E.|%2Ehidden|%34711-x.eml|&bad|&bad%~2|100%25|Bad&Jjo|Entwürfe*|"
		  "Entwürfe/&Jjo|a%2Fb|ctl%01x|x*|x/%*|x/%/y" },
		{ inbox_case, NULL, FALSE, "INBOX|INBOX/x|INBOXES" },
		{ gmail, NULL, FALSE,
		  "Arch|Archive|Archive/x|INBOX|[Gmail]*|[Gmail]/Sent Mail|[Gmail]/Spam" },
		{ gmail, excl_gmail, FALSE, "Arch|INBOX|[Gmail]*|[Gmail]/Sent Mail" },
		{ gmail, excl_gmail, TRUE,
		  "Arch|INBOX|V|V/child|[Gmail]*|[Gmail]/All Mail|[Gmail]/Important|"
		  "[Gmail]/Sent Mail|[Gmail]/Starred" },
		{ NULL, NULL, FALSE, "" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct tree_options o = { FALSE, cases[i].exclude, cases[i].vshow };
		struct tree *t = tree_new(&o);
		g_autofree char *got = NULL;

		apply(t, cases[i].list, NULL);
		got = tree_paths(t);
		g_test_message("case %zu: %s", i, got);
		g_assert_cmpstr(got, ==, cases[i].expect);
		/* Applying the same LIST again changes nothing. */
		{
			g_autoptr(GArray) rm = tree_removed_new();
			g_autofree char *again = NULL;

			apply(t, cases[i].list, rm);
			g_assert_cmpuint(rm->len, ==, 0);
			again = tree_paths(t);
			g_assert_cmpstr(again, ==, got);
		}
		tree_free(t);
	}
}

static void test_folder_attrs(void)
{
	struct tree *t = tree_new(NULL);
	struct tree_entry e;
	guint64 ino;

	apply(t, corpus, NULL);
	apply(t, courier, NULL); /* replaces the corpus */
	tree_free(t);

	t = tree_new(NULL);
	apply(t, corpus, NULL);
	ino = path_ino(t, "Entwürfe");
	g_assert_cmpuint(ino, >, TREE_ROOT_INO);
	g_assert_cmpuint(tree_find_folder(t, "Entw&APw-rfe"), ==, ino);
	g_assert_cmpuint(tree_find_folder(t, "nope"), ==, 0);
	g_assert_cmpint(tree_get(t, ino, TREE_WANT_NAME | TREE_WANT_WIRE | TREE_WANT_FLAGS, &e),
			==, 0);
	g_assert_cmpstr(e.name, ==, "Entwürfe");
	g_assert_cmpstr(e.wire, ==, "Entw&APw-rfe");
	g_assert_cmpstr(e.flags, ==, "");
	g_assert_true(e.selectable);
	g_assert_cmpuint(e.mbox_attrs, ==, IMAP_MBOX_DRAFTS);
	g_assert_cmpuint(e.parent, ==, TREE_ROOT_INO);
	g_assert_cmpint(e.kind, ==, TREE_FOLDER);
	tree_entry_clear(&e);

	g_assert_cmpint(tree_get(t, path_ino(t, "Lists"), TREE_WANT_WIRE, &e), ==, 0);
	g_assert_false(e.selectable);
	g_assert_null(e.wire);
	tree_entry_clear(&e);

	g_assert_cmpint(tree_get(t, TREE_ROOT_INO, TREE_WANT_NAME, &e), ==, 0);
	g_assert_cmpuint(e.parent, ==, TREE_ROOT_INO);
	g_assert_false(e.selectable);
	tree_entry_clear(&e);

	g_assert_cmpint(tree_get(t, 0, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_get(t, 9999, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_get(t, ((guint64)77 << 32) | 5, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_lookup(t, TREE_ROOT_INO, "nope", FALSE, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_lookup(t, 9999, "INBOX", FALSE, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_lookup(t, TREE_ROOT_INO, "entwürfe", FALSE, 0, &e), ==, -ENOENT);
	tree_free(t);
}

static const struct mb relist_a[] = {
	{ "INBOX", '/', 0 },
	{ "Old", '/', 0 },
	{ "Old/kid", '/', 0 },
	{ "Keep", '/', 0 },
	{ "Keep/sub", '/', 0 },
	{ "Gone/deep/leaf", '/', 0 },
	{ NULL, 0, 0 },
};

static const struct mb relist_b[] = {
	{ "INBOX", '/', 0 },
	{ "New", '/', 0 },
	{ "Keep/sub", '/', 0 },    /* Keep: now only an intermediate level */
	{ "Keep/sub2", '/', 0 },
	{ NULL, 0, 0 },
};

static void test_relist(void)
{
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) rm = tree_removed_new();
	guint64 inbox, keep, sub, old, kid, gone, leaf;
	g_autofree char *paths = NULL;
	struct tree_entry e;

	apply(t, relist_a, NULL);
	inbox = path_ino(t, "INBOX");
	keep = path_ino(t, "Keep");
	sub = path_ino(t, "Keep/sub");
	old = path_ino(t, "Old");
	kid = path_ino(t, "Old/kid");
	gone = path_ino(t, "Gone");
	leaf = path_ino(t, "Gone/deep/leaf");
	g_assert_cmpuint(leaf, !=, 0);

	/* The kernel holds Old/kid: it must stay answerable after removal. */
	g_assert_cmpint(tree_lookup(t, old, "kid", TRUE, 0, &e), ==, 0);

	apply(t, relist_b, rm);
	paths = tree_paths(t);
	g_assert_cmpstr(paths, ==, "INBOX|Keep*|Keep/sub|Keep/sub2|New");
	g_assert_cmpuint(path_ino(t, "INBOX"), ==, inbox);
	g_assert_cmpuint(path_ino(t, "Keep"), ==, keep);
	g_assert_cmpuint(path_ino(t, "Keep/sub"), ==, sub);
	g_assert_cmpuint(path_ino(t, "New"), >, leaf);

	/* Children first, subtrees in inode order. */
	{
		/* Inode order is strcmp order of the first LIST: Gone < INBOX < Keep < Old. */
		static const char *const names[] = { "leaf", "deep", "Gone", "kid", "Old" };

		g_assert_cmpuint(rm->len, ==, G_N_ELEMENTS(names));
		for (guint i = 0; i < rm->len; i++) {
			struct tree_removed *r = &g_array_index(rm, struct tree_removed, i);

			g_assert_cmpstr(r->name, ==, names[i]);
		}
		g_assert_cmpuint(g_array_index(rm, struct tree_removed, 3).ino, ==, kid);
		g_assert_cmpuint(g_array_index(rm, struct tree_removed, 3).parent, ==, old);
		g_assert_cmpuint(g_array_index(rm, struct tree_removed, 4).parent, ==,
				 TREE_ROOT_INO);
		g_assert_cmpuint(g_array_index(rm, struct tree_removed, 2).ino, ==, gone);
		g_assert_cmpuint(g_array_index(rm, struct tree_removed, 0).ino, ==, leaf);
	}

	g_assert_cmpint(tree_get(t, kid, TREE_WANT_NAME, &e), ==, 0);
	g_assert_true(e.gone);
	g_assert_cmpstr(e.name, ==, "kid");
	tree_entry_clear(&e);
	g_assert_cmpint(tree_get(t, old, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_get(t, gone, 0, &e), ==, -ENOENT);
	tree_forget(t, kid, 1);
	g_assert_cmpint(tree_get(t, kid, 0, &e), ==, -ENOENT);

	/* A folder that comes back is a new folder. */
	apply(t, relist_a, NULL);
	g_assert_cmpuint(path_ino(t, "Old"), >, old);
	g_assert_cmpuint(path_ino(t, "Keep"), ==, keep);
	tree_free(t);
}

static struct tree_msg_info msg(guint32 uid, const char *subject, const char *flags)
{
	struct tree_msg_info m = { .uid = uid, .size = 1000 + uid, .internaldate = 1700000000 + uid, .flags = flags, .subject = subject };

	return m;
}

static char *dir_names(struct tree *t, guint64 ino)
{
	struct collect c;
	char *s;

	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, ino, 0, FALSE, collect_cb, &c), ==, 0);
	g_ptr_array_add(c.names, NULL);
	s = g_strjoinv("|", (char **)c.names->pdata);
	collect_clear(&c);
	return s;
}

static const struct mb msgs_list[] = {
	{ "INBOX", '/', 0 },
	{ "INBOX/4711-Hello.eml", '/', 0 },
	{ "INBOX/Sub", '/', 0 },
	{ "Lists", '/', NOSEL },
	{ NULL, 0, 0 },
};

static void collect_msg(void *ud, const struct tree_msg_info *m)
{
	g_string_append_printf(ud, "%u:%s:%s;", m->uid, m->name, m->flags);
}

static void collect_objid(void *ud, const struct tree_msg_info *m)
{
	g_string_append_printf(ud, "%u:%s;", m->uid, m->objid ? m->objid : "-");
}

static char *dump_msgs(struct tree *t, guint64 ino, guint32 *uv)
{
	GString *s = g_string_new(NULL);

	g_assert_cmpint(tree_folder_foreach_message(t, ino, uv, collect_msg, s), ==, 0);
	return g_string_free(s, FALSE);
}

/* Deltas as the resync paths make them: QRESYNC, CONDSTORE, new UID range. */
static void test_merge(void)
{
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) rm = tree_removed_new();
	g_autoptr(GArray) gone = g_array_new(FALSE, FALSE, sizeof(struct uid_range));
	struct tree_msg_info base[] = {
		msg(1, "one", "\\Seen"), msg(2, "two", ""), msg(3, "three", ""),
		msg(5, "five", ""), msg(8, "eight", ""),
	};
	guint32 uv = 0;
	guint64 inbox;
	struct tree_entry e;
	char *d;

	apply(t, msgs_list, NULL);
	inbox = path_ino(t, "INBOX");
	g_assert_cmpint(tree_folder_foreach_message(t, inbox, &uv, collect_msg, NULL), ==,
			-ENODATA);
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, base, G_N_ELEMENTS(base), rm), ==, 0);
	g_assert_cmpint(tree_lookup(t, inbox, "3-three.eml", TRUE, 0, &e), ==, 0);

	/* QRESYNC: 2:3 vanished, 5 flagged (update only), 9 added with its
	   saved name; a flag change for 4 (not held) adds nothing. */
	{
		struct tree_msg_info ch[] = { msg(5, NULL, "\\Flagged"), msg(4, NULL, "\\Seen"),
					      msg(9, "ignored", ""), msg(3, NULL, "\\Seen") };
		struct tree_delta dl = { .msgs = ch, .n = G_N_ELEMENTS(ch), .vanished = gone };

		ch[0].update_only = ch[1].update_only = ch[3].update_only = TRUE;
		ch[2].name = "9-saved.eml";
		g_assert_true(uidset_parse("2:3", 0, 10, gone));
		g_assert_cmpint(tree_folder_merge(t, inbox, 7, &dl, rm), ==, 0);
	}
	d = dump_msgs(t, inbox, &uv);
	g_assert_cmpuint(uv, ==, 7);
	g_assert_cmpstr(d, ==, "1:1-one.eml:\\Seen;5:5-five.eml:\\Flagged;8:8-eight.eml:;"
			       "9:9-saved.eml:;");
	g_free(d);
	g_assert_cmpuint(rm->len, ==, 2);
	g_assert_cmpstr(g_array_index(rm, struct tree_removed, 0).name, ==, "2-two.eml");
	g_assert_cmpstr(g_array_index(rm, struct tree_removed, 1).name, ==, "3-three.eml");
	/* Still referenced: answers as gone. */
	g_assert_cmpint(tree_get(t, e.ino, 0, &e), ==, 0);
	g_assert_true(e.gone);
	g_array_set_size(rm, 0);

	/* No CONDSTORE: the flags of every UID below 9 and the new range; 5 is
	   missing from the part known complete, so it left; 9 stays (not in
	   the complete part), 10 is new, NULL flags leave 8's alone. */
	{
		struct tree_msg_info ch[] = { msg(1, NULL, ""), msg(8, NULL, NULL),
					      msg(10, "ten", "$Work") };
		struct tree_delta dl = { .msgs = ch, .n = G_N_ELEMENTS(ch), .complete_below = 9 };

		ch[0].update_only = ch[1].update_only = TRUE;
		g_assert_cmpint(tree_folder_merge(t, inbox, 7, &dl, rm), ==, 0);
	}
	d = dump_msgs(t, inbox, &uv);
	g_assert_cmpstr(d, ==, "1:1-one.eml:;8:8-eight.eml:;9:9-saved.eml:;10:10-ten.eml:$Work;");
	g_free(d);
	g_assert_cmpuint(rm->len, ==, 1);
	g_assert_cmpstr(g_array_index(rm, struct tree_removed, 0).name, ==, "5-five.eml");
	g_array_set_size(rm, 0);

	/* An empty delta changes nothing; everything vanishing empties it. */
	{
		struct tree_delta dl = { 0 };

		g_assert_cmpint(tree_folder_merge(t, inbox, 7, &dl, rm), ==, 0);
		g_assert_cmpuint(rm->len, ==, 0);
		g_assert_true(uidset_parse("1:*", G_MAXUINT32, 10, gone));
		dl.vanished = gone;
		g_assert_cmpint(tree_folder_merge(t, inbox, 7, &dl, rm), ==, 0);
		g_assert_cmpuint(rm->len, ==, 4);
	}
	d = dump_msgs(t, inbox, &uv);
	g_assert_cmpstr(d, ==, "");
	g_free(d);
	tree_forget(t, e.ino, 1);
	tree_free(t);
}

static void test_messages(void)
{
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) rm = tree_removed_new();
	struct tree_msg_info a[] = {
		msg(4711, "Hello", "\\Seen"),
		msg(12, "Re: =?UTF-8?Q?M=C3=BCnchen?= trip", NULL),
		msg(0, "skipped", NULL),
		msg(99, NULL, "\\Seen \\Flagged"),
		msg(12, "duplicate: the first wins", NULL),
	};
	guint64 inbox, lists, m12, m4711;
	g_autofree char *names = NULL;
	struct tree_entry e;

	apply(t, msgs_list, NULL);
	inbox = path_ino(t, "INBOX");
	lists = path_ino(t, "Lists");
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, a, G_N_ELEMENTS(a), rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 0);

	names = dir_names(t, inbox);
	g_assert_cmpstr(names, ==, "%34711-Hello.eml|Sub|12-Re_München_trip.eml|99.eml|"
				   "4711-Hello.eml");

	/* A folder that looks like a message file and the message coexist. */
	g_assert_cmpint(tree_lookup(t, inbox, "4711-Hello.eml", FALSE,
				    TREE_WANT_NAME | TREE_WANT_WIRE | TREE_WANT_FLAGS, &e), ==, 0);
	g_assert_cmpint(e.kind, ==, TREE_MESSAGE);
	g_assert_cmpuint(e.uid, ==, 4711);
	g_assert_cmpuint(e.uidvalidity, ==, 7);
	g_assert_cmpuint(e.size, ==, 1000 + 4711);
	g_assert_cmpint(e.mtime, ==, 1700000000 + 4711);
	g_assert_cmpuint(e.parent, ==, inbox);
	g_assert_cmpstr(e.wire, ==, "INBOX");
	g_assert_cmpstr(e.flags, ==, "\\Seen");
	g_assert_false(e.gone);
	m4711 = e.ino;
	tree_entry_clear(&e);
	g_assert_cmpint(tree_lookup(t, inbox, "%34711-Hello.eml", FALSE, 0, &e), ==, 0);
	g_assert_cmpint(e.kind, ==, TREE_FOLDER);

	/* Exact names only. */
	{
		static const struct {
			const char *name;
			int rc;
		} lk[] = {
			{ "12-Re_München_trip.eml", 0 },
			{ "12-Re_Munchen_trip.eml", -ENOENT },
			{ "12.eml", -ENOENT },
			{ "012-Re_München_trip.eml", -ENOENT },
			{ "99.eml", 0 },
			{ "99-.eml", -ENOENT },
			{ "98.eml", -ENOENT },
			{ "0.eml", -ENOENT },
			{ "Sub", 0 },
			{ "", -ENOENT },
			{ "4294967296.eml", -ENOENT },
		};

		for (gsize i = 0; i < G_N_ELEMENTS(lk); i++)
			g_assert_cmpint(tree_lookup(t, inbox, lk[i].name, FALSE, 0, &e), ==,
					lk[i].rc);
	}
	g_assert_cmpint(tree_lookup(t, inbox, "12-Re_München_trip.eml", TRUE, 0, &e), ==, 0);
	m12 = e.ino;

	/* Error paths. */
	g_assert_cmpint(tree_folder_set_messages(t, lists, 1, a, 1, NULL), ==, -EINVAL);
	g_assert_cmpint(tree_folder_set_messages(t, TREE_ROOT_INO, 1, a, 1, NULL), ==, -EINVAL);
	g_assert_cmpint(tree_folder_set_messages(t, m12, 1, a, 1, NULL), ==, -ENOTDIR);
	g_assert_cmpint(tree_folder_set_messages(t, 9999, 1, a, 1, NULL), ==, -ENOENT);
	g_assert_cmpint(tree_lookup(t, m12, "x", FALSE, 0, &e), ==, -ENOTDIR);
	g_assert_cmpint(tree_readdir(t, m12, 0, FALSE, collect_cb, NULL), ==, -ENOTDIR);
	g_assert_cmpint(tree_message_set_flags(t, inbox, "x"), ==, -EISDIR);
	g_assert_cmpint(tree_message_set_flags(t, m4711, "\\Answered"), ==, 0);
	g_assert_cmpint(tree_message_set_size(t, m4711, 5), ==, 0);
	g_assert_cmpint(tree_get(t, m4711, TREE_WANT_FLAGS, &e), ==, 0);
	g_assert_cmpstr(e.flags, ==, "\\Answered");
	g_assert_cmpuint(e.size, ==, 5);
	tree_entry_clear(&e);

	/* Same UIDVALIDITY: names frozen, flags new, 99 removed, 5000 added. */
	{
		struct tree_msg_info b[] = {
			msg(5000, "New one", NULL),
			msg(12, "subject changed?", "\\Deleted"),
			msg(4711, "Hello", "\\Seen"),
		};
		g_autofree char *n2 = NULL;

		g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, b, G_N_ELEMENTS(b), rm), ==,
				0);
		g_assert_cmpuint(rm->len, ==, 1);
		g_assert_cmpstr(g_array_index(rm, struct tree_removed, 0).name, ==, "99.eml");
		g_assert_cmpuint(g_array_index(rm, struct tree_removed, 0).parent, ==, inbox);
		g_array_set_size(rm, 0);
		n2 = dir_names(t, inbox);
		g_assert_cmpstr(n2, ==, "%34711-Hello.eml|Sub|12-Re_München_trip.eml|"
					"4711-Hello.eml|5000-New_one.eml");
		g_assert_cmpint(tree_get(t, m12, TREE_WANT_FLAGS, &e), ==, 0);
		g_assert_cmpstr(e.flags, ==, "\\Deleted");
		g_assert_cmpuint(e.size, ==, 1012);
		tree_entry_clear(&e);
		g_assert_cmpint(tree_get(t, m4711, 0, &e), ==, 0);
		g_assert_cmpuint(e.size, ==, 5); /* the corrected size stays */
	}

	/* New UIDVALIDITY: all old ones go; new numbers even for the same UID. */
	{
		struct tree_msg_info c[] = { msg(12, "Other", NULL) };

		g_assert_cmpint(tree_folder_set_messages(t, inbox, 8, c, 1, rm), ==, 0);
		g_assert_cmpuint(rm->len, ==, 3);
		g_array_set_size(rm, 0);
		g_assert_cmpint(tree_lookup(t, inbox, "12-Other.eml", FALSE, 0, &e), ==, 0);
		g_assert_cmpuint(e.ino, !=, m12);
		g_assert_cmpuint(e.uidvalidity, ==, 8);
		/* m12 was looked up: still there, gone, with the attributes an
		   open file of it goes on showing; m4711 was not. */
		g_assert_cmpint(tree_get(t, m12, TREE_WANT_NAME, &e), ==, 0);
		g_assert_true(e.gone);
		g_assert_cmpuint(e.uidvalidity, ==, 7);
		g_assert_cmpuint(e.size, ==, 1012);
		g_assert_cmpint(e.mtime, ==, 1700000000 + 12);
		g_assert_cmpstr(e.name, ==, "12-Re_München_trip.eml");
		tree_entry_clear(&e);
		g_assert_cmpint(tree_get(t, m4711, 0, &e), ==, -ENOENT);
		g_assert_cmpint(tree_lookup(t, inbox, "12-Re_München_trip.eml", FALSE, 0, &e), ==,
				-ENOENT);
		tree_forget(t, m12, 5); /* more than held: clamps */
		g_assert_cmpint(tree_get(t, m12, 0, &e), ==, -ENOENT);
		tree_forget(t, m12, 1); /* unknown: ignored */
	}

	/* Empty listing removes everything. */
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 8, NULL, 0, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	g_array_set_size(rm, 0);

	/* Folder becomes \Noselect: its messages are reported. */
	{
		struct tree_msg_info d[] = { msg(1, "a", NULL), msg(2, "b", NULL) };
		static const struct mb nosel[] = {
			{ "INBOX", '/', NOSEL },
			{ "INBOX/Sub", '/', 0 },
			{ NULL, 0, 0 },
		};

		g_assert_cmpint(tree_folder_set_messages(t, inbox, 8, d, 2, NULL), ==, 0);
		apply(t, nosel, rm);
		/* Folders "%34711-Hello.eml" and Lists, then messages 1, 2. */
		g_assert_cmpuint(rm->len, ==, 4);
		g_assert_cmpstr(g_array_index(rm, struct tree_removed, 2).name, ==, "1-a.eml");
		g_assert_cmpstr(g_array_index(rm, struct tree_removed, 3).name, ==, "2-b.eml");
		g_assert_cmpuint(path_ino(t, "INBOX"), ==, inbox);
		g_assert_cmpint(tree_lookup(t, inbox, "1-a.eml", FALSE, 0, &e), ==, -ENOENT);
	}
	tree_free(t);
}

static void test_names_uid(void)
{
	struct tree_options o = { TRUE, NULL, FALSE };
	struct tree *t = tree_new(&o);
	struct tree_msg_info a[] = { msg(3, "Hello", NULL), msg(1, NULL, NULL) };
	g_autofree char *names = NULL;
	struct tree_entry e;
	guint64 inbox;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 1, a, 2, NULL), ==, 0);
	names = dir_names(t, inbox);
	g_assert_cmpstr(names, ==, "1.eml|3.eml");
	g_assert_cmpint(tree_lookup(t, inbox, "3.eml", FALSE, 0, &e), ==, 0);
	g_assert_cmpint(tree_lookup(t, inbox, "3-Hello.eml", FALSE, 0, &e), ==, -ENOENT);
	tree_free(t);
}

/* One message leaves (rm, mv by this mount); folder keys name new children. */
static void test_message_remove_and_keys(void)
{
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) rm = tree_removed_new();
	struct tree_msg_info a[] = { msg(1, "One", NULL), msg(2, "Two", NULL), msg(3, "Three", NULL) };
	g_autofree char *names = NULL;
	g_autofree char *key = NULL;
	g_autofree char *root = NULL;
	struct tree_entry e = { 0 };
	guint64 inbox, lists;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	lists = path_ino(t, "Lists");
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, a, 3, NULL), ==, 0);
	/* The kernel holds message 2: it stays answerable as gone. */
	g_assert_cmpint(tree_lookup(t, inbox, "2-Two.eml", TRUE, 0, &e), ==, 0);
	g_assert_cmpint(tree_message_remove(t, inbox, e.uid, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	g_assert_cmpstr(g_array_index(rm, struct tree_removed, 0).name, ==, "2-Two.eml");
	g_assert_cmpuint(g_array_index(rm, struct tree_removed, 0).parent, ==, inbox);
	names = dir_names(t, inbox);
	g_assert_cmpstr(names, ==, "1-One.eml|3-Three.eml");
	g_assert_cmpint(tree_lookup(t, inbox, "2-Two.eml", FALSE, 0, &e), ==, -ENOENT);
	g_assert_cmpint(tree_get(t, e.ino, 0, &e), ==, 0);
	g_assert_true(e.gone);
	g_assert_cmpint(tree_message_remove(t, inbox, e.uid, rm), ==, -ENOENT);
	g_assert_cmpint(tree_message_remove(t, e.ino, 2, rm), ==, -ENOTDIR);
	tree_forget(t, e.ino, 1);
	g_assert_cmpint(tree_get(t, e.ino, 0, &e), ==, -ENOENT);
	/* Keys: the wire prefix, also of a folder the server did not list itself. */
	key = tree_folder_key(t, lists);
	g_assert_cmpstr(key, ==, "Lists");
	root = tree_folder_key(t, TREE_ROOT_INO);
	g_assert_cmpstr(root, ==, "");
	g_assert_null(tree_folder_key(t, e.ino));
	tree_free(t);
}

static struct tree_msg_info omsg(guint32 uid, const char *subject, const char *objid)
{
	struct tree_msg_info m = msg(uid, subject, "\\Seen");

	m.objid = objid;
	return m;
}

static guint64 name_ino(struct tree *t, guint64 folder, const char *name, gboolean ref,
			struct tree_entry *e)
{
	g_assert_cmpint(tree_lookup(t, folder, name, ref, TREE_WANT_WIRE | TREE_WANT_FLAGS, e), ==, 0);
	return e->ino;
}

/* Objects: one inode per objid across folders, names, link counts, the
   representative, removal of one name, references after the last. */
static void test_objects(void)
{
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) rm = tree_removed_new();
	struct tree_msg_info in[] = { omsg(1, "One", "Ea"), omsg(2, "Two", "Eb"),
				      msg(3, "Three", NULL) };
	struct tree_msg_info arch[] = { omsg(7, "One", "Ea") };
	struct tree_msg_info trash[] = { omsg(4, "One", "Ea"), omsg(5, "Two", "Eb") };
	struct tree_entry e = { 0 };
	const struct tree_removed *r;
	guint64 inbox, archive, bin, one, two;
	GArray *names;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	archive = path_ino(t, "Archive");
	bin = path_ino(t, "Trash");
	g_assert_cmpuint(archive, <, inbox); /* strcmp order: Archive first */
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, in, 3, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 0);
	/* The kernel holds Ea (a lookup), not Eb. */
	one = name_ino(t, inbox, "1-One.eml", TRUE, &e);
	g_assert_true(TREE_IS_OBJECT(one));
	g_assert_cmpuint(e.nlink, ==, 1);
	g_assert_false(e.alias);
	tree_entry_clear(&e);
	two = name_ino(t, inbox, "2-Two.eml", FALSE, &e);
	tree_entry_clear(&e);
	g_assert_cmpuint(one, !=, two);
	/* No objid: a message number as ever. */
	g_assert_false(TREE_IS_OBJECT(name_ino(t, inbox, "3-Three.eml", FALSE, &e)));
	g_assert_cmpuint(e.ino, ==, ((guint64)1 << 32) | 3);
	g_assert_cmpuint(e.nlink, ==, 1);
	tree_entry_clear(&e);

	/* A second folder holds Ea: the same inode, two names; its link count
	   change is reported, as the kernel holds it. Archive sorts first: it
	   becomes the representative. */
	g_assert_cmpint(tree_folder_set_messages(t, archive, 9, arch, 1, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	g_assert_true(g_array_index(rm, struct tree_removed, 0).linked);
	g_assert_null(g_array_index(rm, struct tree_removed, 0).name);
	g_assert_cmpuint(g_array_index(rm, struct tree_removed, 0).ino, ==, one);
	g_array_set_size(rm, 0);
	g_assert_cmpuint(name_ino(t, archive, "7-One.eml", TRUE, &e), ==, one);
	g_assert_cmpuint(e.nlink, ==, 2);
	g_assert_false(e.alias);
	g_assert_cmpuint(e.uid, ==, 7);
	tree_entry_clear(&e);
	g_assert_cmpuint(name_ino(t, inbox, "1-One.eml", TRUE, &e), ==, one);
	g_assert_true(e.alias);
	g_assert_cmpuint(e.uid, ==, 1);
	g_assert_cmpstr(e.wire, ==, "INBOX");
	tree_entry_clear(&e);
	g_assert_cmpint(tree_get(t, one, TREE_WANT_WIRE | TREE_WANT_OBJID, &e), ==, 0);
	g_assert_cmpuint(e.uid, ==, 7);
	g_assert_cmpuint(e.uidvalidity, ==, 9);
	g_assert_cmpstr(e.wire, ==, "Archive");
	g_assert_cmpstr(e.objid, ==, "Ea");
	g_assert_cmpuint(e.nlink, ==, 2);
	tree_entry_clear(&e);
	names = tree_message_names(t, one, TREE_WANT_WIRE);
	g_assert_nonnull(names);
	g_assert_cmpuint(names->len, ==, 2);
	g_assert_cmpstr(g_array_index(names, struct tree_entry, 0).wire, ==, "Archive");
	g_assert_cmpstr(g_array_index(names, struct tree_entry, 1).wire, ==, "INBOX");
	g_array_unref(names);
	g_assert_cmpint(tree_folder_object(t, inbox, one, FALSE, 0, &e), ==, 0);
	g_assert_cmpuint(e.uid, ==, 1);
	g_assert_cmpint(tree_folder_object(t, bin, one, FALSE, 0, &e), ==, -ENOENT);

	/* Flags and sizes go to every name. */
	g_assert_cmpint(tree_message_set_flags(t, one, "\\Flagged"), ==, 0);
	name_ino(t, inbox, "1-One.eml", FALSE, &e);
	g_assert_cmpstr(e.flags, ==, "\\Flagged");
	tree_entry_clear(&e);
	name_ino(t, archive, "7-One.eml", FALSE, &e);
	g_assert_cmpstr(e.flags, ==, "\\Flagged");
	tree_entry_clear(&e);

	/* Trash lists both: three names of Ea, two of Eb; only Ea, held by the
	   kernel, has a link count to correct. */
	g_assert_cmpint(tree_folder_set_messages(t, bin, 3, trash, 2, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	g_assert_cmpuint(g_array_index(rm, struct tree_removed, 0).ino, ==, one);
	g_array_set_size(rm, 0);
	g_assert_cmpint(tree_get(t, two, 0, &e), ==, 0);
	g_assert_cmpuint(e.nlink, ==, 2);

	/* One name leaves (rm): only the name, reported linked. */
	g_assert_cmpint(tree_message_remove(t, inbox, 1, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	r = &g_array_index(rm, struct tree_removed, 0);
	g_assert_true(r->linked);
	g_assert_cmpstr(r->name, ==, "1-One.eml");
	g_assert_cmpuint(r->parent, ==, inbox);
	g_assert_cmpuint(r->ino, ==, one);
	g_array_set_size(rm, 0);
	g_assert_cmpint(tree_get(t, one, 0, &e), ==, 0);
	g_assert_cmpuint(e.nlink, ==, 2);
	g_assert_false(e.gone);

	/* A listing without it in Archive: the representative moves to Trash. */
	g_assert_cmpint(tree_folder_set_messages(t, archive, 9, NULL, 0, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	g_assert_true(g_array_index(rm, struct tree_removed, 0).linked);
	g_array_set_size(rm, 0);
	g_assert_cmpint(tree_get(t, one, TREE_WANT_WIRE, &e), ==, 0);
	g_assert_cmpstr(e.wire, ==, "Trash");
	g_assert_cmpuint(e.nlink, ==, 1);
	tree_entry_clear(&e);

	/* The last name leaves: reported as the inode's (notify_delete), gone
	   while referenced (two lookups above), with its last attributes. */
	g_assert_cmpint(tree_message_remove(t, bin, 4, rm), ==, 0);
	g_assert_cmpuint(rm->len, ==, 1);
	g_assert_false(g_array_index(rm, struct tree_removed, 0).linked);
	g_array_set_size(rm, 0);
	g_assert_cmpint(tree_get(t, one, TREE_WANT_NAME | TREE_WANT_FLAGS, &e), ==, 0);
	g_assert_true(e.gone);
	g_assert_cmpuint(e.nlink, ==, 0);
	g_assert_cmpuint(e.uid, ==, 4);
	g_assert_cmpstr(e.name, ==, "4-One.eml");
	g_assert_cmpstr(e.flags, ==, "\\Seen");
	tree_entry_clear(&e);
	g_assert_null(tree_message_names(t, one, 0));
	/* The id seen again: a new object, a new number. */
	g_assert_cmpint(tree_folder_set_messages(t, bin, 3, trash, 2, rm), ==, 0);
	g_assert_cmpuint(name_ino(t, bin, "4-One.eml", FALSE, &e), !=, one);
	tree_entry_clear(&e);
	tree_forget(t, one, 1);
	g_assert_cmpint(tree_get(t, one, 0, &e), ==, 0);
	tree_forget(t, one, 2);
	g_assert_cmpint(tree_get(t, one, 0, &e), ==, -ENOENT);
	/* A message number is no directory; nor is an object's. */
	g_assert_cmpint(tree_lookup(t, two, "x", FALSE, 0, &e), ==, -ENOTDIR);

	/* A folder's listing saved and given back carries the objids. */
	{
		guint32 uv;
		GString *ids = g_string_new(NULL);

		g_assert_cmpint(tree_folder_foreach_message(t, inbox, &uv, collect_objid, ids), ==, 0);
		g_assert_cmpstr(ids->str, ==, "2:Eb;3:-;");
		g_string_free(ids, TRUE);
	}
	tree_free(t);
}

/* Resume readdir from each offset while the folder changes in between. */
/* A folder's mtime is its newest message's INTERNALDATE, once its messages are known. */
static void test_folder_mtime(void)
{
	struct tree *t = tree_new(NULL);
	struct tree_msg_info a[] = { msg(3, "Three", NULL), msg(9, "Nine", NULL),
				     msg(5, "Five", NULL) };
	struct tree_entry e = { 0 };
	guint64 inbox;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	g_assert_cmpint(tree_get(t, inbox, 0, &e), ==, 0);
	g_assert_false(e.listed);
	g_assert_false(e.list_failed);
	g_assert_cmpint(e.mtime, ==, 0);
	tree_folder_note_list_failed(t, inbox);
	g_assert_cmpint(tree_get(t, inbox, 0, &e), ==, 0);
	g_assert_true(e.list_failed);
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, a, 3, NULL), ==, 0);
	g_assert_cmpint(tree_get(t, inbox, 0, &e), ==, 0);
	g_assert_true(e.listed);
	g_assert_cmpint(e.mtime, ==, 1700000000 + 9);
	/* The newest leaves: the next newest. */
	g_assert_cmpint(tree_lookup(t, inbox, "9-Nine.eml", FALSE, 0, &e), ==, 0);
	g_assert_cmpint(tree_message_remove(t, inbox, e.uid, NULL), ==, 0);
	g_assert_cmpint(tree_get(t, inbox, 0, &e), ==, 0);
	g_assert_cmpint(e.mtime, ==, 1700000000 + 5);
	/* Empty, known: 0; the root holds no message: 0, never listed. */
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, NULL, 0, NULL), ==, 0);
	g_assert_cmpint(tree_get(t, inbox, 0, &e), ==, 0);
	g_assert_true(e.listed);
	g_assert_cmpint(e.mtime, ==, 0);
	g_assert_cmpint(tree_get(t, TREE_ROOT_INO, 0, &e), ==, 0);
	g_assert_false(e.listed);
	g_assert_cmpint(e.mtime, ==, 0);
	tree_free(t);
}

static void test_readdir_offsets(void)
{
	struct tree *t = tree_new(NULL);
	struct tree_msg_info a[] = { msg(10, "a", NULL), msg(20, "b", NULL), msg(30, "c", NULL),
				     msg(40, "d", NULL) };
	struct tree_msg_info b[] = { msg(10, "a", NULL), msg(30, "c", NULL), msg(40, "d", NULL),
				     msg(25, "new", NULL), msg(50, "e", NULL) };
	static const struct mb l[] = {
		{ "INBOX", '/', 0 }, { "INBOX/f1", '/', 0 }, { "INBOX/f2", '/', 0 }, { NULL, 0, 0 },
	};
	struct collect c;
	guint64 inbox, off;
	g_autoptr(GString) seen = g_string_new("");

	apply(t, l, NULL);
	inbox = path_ino(t, "INBOX");
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 1, a, G_N_ELEMENTS(a), NULL), ==, 0);

	/* One entry per call, like a tiny getdents buffer. */
	off = 0;
	for (guint round = 0;; round++) {
		collect_init(&c);
		c.limit = 1;
		c.dots = TRUE;
		g_assert_cmpint(tree_readdir(t, inbox, off, round == 3, collect_cb, &c), ==, 0);
		if (c.names->len == 0) {
			collect_clear(&c);
			break;
		}
		g_string_append_printf(seen, "%s|", (char *)g_ptr_array_index(c.names, 0));
		g_assert_cmpuint(g_array_index(c.offs, guint64, 0), >, off);
		off = g_array_index(c.offs, guint64, 0);
		collect_clear(&c);
		if (round == 4) {
			/* After "10-a.eml": 20 goes, 25 and 50 come. */
			g_assert_cmpint(tree_folder_set_messages(t, inbox, 1, b, G_N_ELEMENTS(b),
								 NULL), ==, 0);
		}
	}
	g_assert_cmpstr(seen->str, ==, ".|..|f1|f2|10-a.eml|25-new.eml|30-c.eml|40-d.eml|50-e.eml|");

	/* readdirplus counted f2 (round 3): it outlives its removal. */
	{
		static const struct mb l2[] = { { "INBOX", '/', 0 }, { NULL, 0, 0 } };
		struct tree_entry e;
		guint64 f1 = path_ino(t, "INBOX/f1"), f2 = path_ino(t, "INBOX/f2");

		apply(t, l2, NULL);
		g_assert_cmpint(tree_get(t, f1, 0, &e), ==, -ENOENT);
		g_assert_cmpint(tree_get(t, f2, 0, &e), ==, 0);
		g_assert_true(e.gone);
		/* A gone folder lists only its dots. */
		{
			g_autofree char *n = NULL;

			collect_init(&c);
			c.dots = TRUE;
			g_assert_cmpint(tree_readdir(t, f2, 0, FALSE, collect_cb, &c), ==, 0);
			g_assert_cmpuint(c.names->len, ==, 2);
			collect_clear(&c);
			n = dir_names(t, f2);
			g_assert_cmpstr(n, ==, "");
		}
		tree_forget(t, f2, 1);
		g_assert_cmpint(tree_get(t, f2, 0, &e), ==, -ENOENT);
	}
	/* Offsets past the end, and absurd ones. */
	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, inbox, G_MAXUINT64, FALSE, collect_cb, &c), ==, 0);
	g_assert_cmpint(tree_readdir(t, inbox, ((guint64)1 << 33) + 50, FALSE, collect_cb, &c), ==,
			0);
	g_assert_cmpuint(c.names->len, ==, 0);
	collect_clear(&c);
	tree_free(t);
}

/* A removed message still referenced comes back when listed again. */
/* A first listing taken in as it arrives (tree_folder_stream_begin). */
static void merge_chunk(struct tree *t, guint64 ino, guint32 from, guint32 to)
{
	g_autoptr(GArray) msgs = g_array_new(FALSE, FALSE, sizeof(struct tree_msg_info));
	struct tree_delta d = { 0 };

	for (guint32 uid = from; uid <= to; uid++) {
		struct tree_msg_info m = msg(uid, "s", NULL);

		g_array_append_val(msgs, m);
	}
	d.msgs = (const struct tree_msg_info *)msgs->data;
	d.n = msgs->len;
	g_assert_cmpint(tree_folder_merge(t, ino, 7, &d, NULL), ==, 0);
}

/* A reader of a streamed folder, as fs_imap_dir.c's readdir reads it: a
   few entries per call, waiting when nothing new came. */
struct stream_reader {
	struct tree *t;
	guint64 ino;
	GArray *uids; /* guint32, in the order given */
	int last_rc;
};

static gpointer stream_read(gpointer p)
{
	struct stream_reader *r = p;
	guint64 off = 0;

	for (;;) {
		struct collect c;
		int rc;

		collect_init(&c);
		c.limit = 7;
		rc = tree_readdir(r->t, r->ino, off, TRUE, collect_cb, &c);
		g_assert_cmpint(rc, >=, 0);
		for (guint i = 0; i < c.names->len; i++) {
			guint32 uid = (guint32)g_ascii_strtoull(g_ptr_array_index(c.names, i), NULL, 10);

			g_array_append_val(r->uids, uid);
			off = g_array_index(c.offs, guint64, i);
		}
		r->last_rc = rc;
		if (c.names->len == 0 && rc == 0) {
			collect_clear(&c);
			return NULL;
		}
		if (c.names->len == 0)
			tree_folder_stream_wait(r->t, r->ino, off, g_get_monotonic_time() + G_USEC_PER_SEC);
		collect_clear(&c);
	}
}

static void test_stream(void)
{
	static const struct mb l[] = { { "INBOX", '/', 0 }, { NULL, 0, 0 } };
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) removed = tree_removed_new();
	struct stream_reader r = { .t = t, .uids = g_array_new(FALSE, FALSE, sizeof(guint32)) };
	g_autoptr(GHashTable) gone = g_hash_table_new(g_direct_hash, g_direct_equal);
	struct tree_entry e;
	struct collect c;
	GThread *th;

	apply(t, l, NULL);
	r.ino = path_ino(t, "INBOX");

	/* Without the newest arrival named first, a stat still waits. */
	g_assert_cmpint(tree_folder_stream_begin(t, r.ino, 7, 0), ==, 0);
	g_assert_true(tree_folder_streaming(t, r.ino));
	g_assert_cmpint(tree_get(t, r.ino, 0, &e), ==, 0);
	g_assert_false(e.listed);
	g_assert_false(tree_folder_wait_listed(t, r.ino, g_get_monotonic_time() + 1000));
	g_assert_false(tree_folder_wait_listed(t, 999999, G_MAXINT64));
	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, r.ino, 0, FALSE, collect_cb, &c), ==, TREE_READDIR_MORE);
	collect_clear(&c);
	/* Ended unfinished: what came leaves, reported, and nothing is listed. */
	merge_chunk(t, r.ino, 1, 5);
	tree_folder_stream_end(t, r.ino, FALSE, removed);
	g_assert_cmpuint(removed->len, ==, 5);
	g_assert_false(tree_folder_streaming(t, r.ino));
	g_assert_cmpint(tree_get(t, r.ino, 0, &e), ==, 0);
	g_assert_false(e.listed);

	/* Named first: listed at once, with that mtime, a newer message's later. */
	g_assert_cmpint(tree_folder_stream_begin(t, r.ino, 7, 1700000000 + 2500), ==, 0);
	g_assert_cmpint(tree_folder_stream_begin(t, r.ino, 7, 1), ==, -EEXIST);
	g_assert_cmpint(tree_get(t, r.ino, 0, &e), ==, 0);
	g_assert_true(e.listed);
	g_assert_cmpint(e.mtime, ==, 1700000000 + 2500);
	g_assert_true(tree_folder_wait_listed(t, r.ino, 0));

	/* A reader meanwhile: chunks arrive, some messages go, before and
	   after the reader passed them; each is given once, in UID order,
	   and every one that stayed is given. */
	th = g_thread_new("reader", stream_read, &r);
	for (guint32 from = 1; from <= 3000; from += 100) {
		merge_chunk(t, r.ino, from, from + 99);
		if (from > 1) {
			guint32 uid = from - 50 + (from % 7);

			g_assert_cmpint(tree_message_remove(t, r.ino, uid, NULL), ==, 0);
			g_hash_table_add(gone, GUINT_TO_POINTER(uid));
		}
		g_usleep(200);
	}
	g_assert_cmpint(tree_get(t, r.ino, 0, &e), ==, 0);
	g_assert_cmpint(e.mtime, ==, 1700000000 + 3000);
	tree_folder_stream_end(t, r.ino, TRUE, NULL);
	g_thread_join(th);
	g_assert_cmpint(r.last_rc, ==, 0);
	for (guint i = 1; i < r.uids->len; i++)
		g_assert_cmpuint(g_array_index(r.uids, guint32, i), >,
				 g_array_index(r.uids, guint32, i - 1));
	for (guint32 uid = 1, i = 0; uid <= 3000; uid++) {
		if (i < r.uids->len && g_array_index(r.uids, guint32, i) == uid)
			i++;
		else
			g_assert_true(g_hash_table_contains(gone, GUINT_TO_POINTER(uid)));
	}
	g_assert_cmpint(tree_get(t, r.ino, 0, &e), ==, 0);
	g_assert_true(e.listed);
	g_assert_false(tree_folder_streaming(t, r.ino));
	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, r.ino, 0, FALSE, collect_cb, &c), ==, 0);
	g_assert_cmpuint(c.names->len, ==, 3000 - g_hash_table_size(gone));
	collect_clear(&c);
	g_array_unref(r.uids);
	tree_free(t);
}

static void test_resurrect(void)
{
	struct tree *t = tree_new(NULL);
	struct tree_msg_info a[] = { msg(1, "a", NULL), msg(2, "b", NULL) };
	struct tree_entry e;
	guint64 inbox, m2;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 1, a, 2, NULL), ==, 0);
	g_assert_cmpint(tree_lookup(t, inbox, "2-b.eml", TRUE, 0, &e), ==, 0);
	m2 = e.ino;
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 1, a, 1, NULL), ==, 0);
	g_assert_cmpint(tree_get(t, m2, 0, &e), ==, 0);
	g_assert_true(e.gone);
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 1, a, 2, NULL), ==, 0);
	g_assert_cmpint(tree_get(t, m2, 0, &e), ==, 0);
	g_assert_false(e.gone);
	tree_forget(t, m2, 1);
	g_assert_cmpint(tree_get(t, m2, 0, &e), ==, 0);
	/* The folder goes away while the kernel holds a message of it. */
	g_assert_cmpint(tree_lookup(t, inbox, "2-b.eml", TRUE, 0, &e), ==, 0);
	apply(t, NULL, NULL);
	g_assert_cmpint(tree_get(t, m2, TREE_WANT_WIRE, &e), ==, 0);
	g_assert_true(e.gone);
	g_assert_null(e.wire);
	tree_forget(t, m2, 1);
	g_assert_cmpint(tree_get(t, m2, 0, &e), ==, -ENOENT);
	tree_free(t);
}

/* A 100,000-message first listing and relisting: time and heap per
   message, printed (the benchmark is scripts/bench; nothing is asserted
   of them). With objids, every message is an object (model/tree_objects.h). */
static void large_listing(gboolean objids)
{
	const guint n = 100000;
	struct tree *t = tree_new(NULL);
	struct tree_msg_info *a = g_new(struct tree_msg_info, n);
	char **subj = g_new(char *, n);
	char **ids = g_new0(char *, n);
	struct mallinfo2 before, after;
	gint64 t0, t1, t2;
	struct collect c;
	guint64 inbox;
	gsize namebytes = 0, heap;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	for (guint i = 0; i < n; i++) {
		subj[i] = g_strdup_printf("Re: Meeting notes number %u", i);
		a[i] = msg(n - i, subj[i], i % 3 ? "\\Seen" : "\\Seen \\Flagged");
		/* An EMAILID-like id of 26 bytes. */
		ids[i] = objids ? g_strdup_printf("EM%024x", i * 2654435761u) : NULL;
		a[i].objid = ids[i];
	}
	before = mallinfo2();
	t0 = g_get_monotonic_time();
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 42, a, n, NULL), ==, 0);
	t1 = g_get_monotonic_time();
	after = mallinfo2();
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 42, a, n, NULL), ==, 0);
	t2 = g_get_monotonic_time();

	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, inbox, 0, FALSE, collect_cb, &c), ==, 0);
	g_assert_cmpuint(c.names->len, ==, n);
	for (guint i = 2; i < c.names->len; i++)
		namebytes += strlen(g_ptr_array_index(c.names, i)) + 1;
	collect_clear(&c);
	{
		struct tree_entry e;

		g_assert_cmpint(tree_lookup(t, inbox, "1-Re_Meeting_notes_number_99999.eml", FALSE,
					    0, &e), ==, 0);
		g_assert_cmpuint(e.uid, ==, 1);
	}
	/* Big blocks (the message array) are mmap()ed: hblkhd, not uordblks. */
	heap = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
	g_test_message("100000 messages%s: first listing %.0f ms, relisting %.0f ms, "
		       "heap %zu bytes = %.1f per message (names %.1f of it incl. NUL)",
		       objids ? " with objids" : "", (t1 - t0) / 1000.0, (t2 - t1) / 1000.0,
		       heap, (double)heap / n, (double)namebytes / n);
	for (guint i = 0; i < n; i++) {
		g_free(subj[i]);
		g_free(ids[i]);
	}
	g_free(ids);
	g_free(subj);
	g_free(a);
	tree_free(t);
}

/* The name of uid with the subject names_test_subject gives it. */
static char *compact_name(guint32 uid)
{
	return g_strdup_printf("%u-A_fairly_long_subject_line_number_%u.eml", uid, uid);
}

/* A message set's names live in one store (model/tree_msgs.h): when most
   leave, the store is compacted, and every name still used (live, and
   gone but referenced) must read the same after. Under ASan a name left
   pointing into the old store fails here. */
static void test_names_compact(void)
{
	const guint32 n = 20000;
	struct tree *t = tree_new(NULL);
	struct tree_msg_info *a = g_new0(struct tree_msg_info, n);
	char **subj = g_new0(char *, n);
	g_autofree char *five = compact_name(5);
	struct tree_entry e;
	struct collect c;
	guint64 inbox, ino5;

	apply(t, corpus, NULL);
	inbox = path_ino(t, "INBOX");
	for (guint32 i = 0; i < n; i++) {
		subj[i] = g_strdup_printf("A fairly long subject line number %u", i + 1);
		a[i] = msg(i + 1, subj[i], "\\Seen");
	}
	g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, a, n, NULL), ==, 0);
	g_assert_cmpint(tree_lookup(t, inbox, five, TRUE, 0, &e), ==, 0);
	ino5 = e.ino;

	/* 1..1000 stay but 5; 19,001 names die: far more than live ones. */
	{
		g_autoptr(GArray) removed = tree_removed_new();
		struct tree_msg_info keep[999];
		guint k = 0;

		for (guint32 i = 0; i < 1000; i++)
			if (i + 1 != 5)
				keep[k++] = a[i];
		g_assert_cmpint(tree_folder_set_messages(t, inbox, 7, keep, k, removed), ==, 0);
		g_assert_cmpuint(removed->len, ==, n - 999);
	}
	collect_init(&c);
	g_assert_cmpint(tree_readdir(t, inbox, 0, FALSE, collect_cb, &c), ==, 0);
	g_assert_cmpuint(c.names->len, ==, 999);
	for (guint i = 0; i < c.names->len; i++) {
		guint32 uid = g_array_index(c.entries, struct tree_entry, i).uid;
		g_autofree char *want = compact_name(uid);

		g_assert_cmpstr(g_ptr_array_index(c.names, i), ==, want);
		g_assert_cmpint(tree_lookup(t, inbox, want, FALSE, TREE_WANT_NAME, &e), ==, 0);
		g_assert_cmpstr(e.name, ==, want);
		tree_entry_clear(&e);
	}
	collect_clear(&c);
	/* The gone one answers with its name until forgotten. */
	g_assert_cmpint(tree_get(t, ino5, TREE_WANT_NAME, &e), ==, 0);
	g_assert_true(e.gone);
	g_assert_cmpstr(e.name, ==, five);
	tree_entry_clear(&e);
	tree_forget(t, ino5, 1);
	g_assert_cmpint(tree_get(t, ino5, 0, &e), ==, -ENOENT);

	/* Chunks of a listing read as it arrives: appended in place. */
	{
		const struct tree_delta d1 = {.msgs = a + 1000, .n = 500, .complete_below = 0};
		const struct tree_delta d2 = {.msgs = a + 1500, .n = 500, .complete_below = 0};
		g_autofree char *last = compact_name(2000);

		g_assert_cmpint(tree_folder_merge(t, inbox, 7, &d1, NULL), ==, 0);
		g_assert_cmpint(tree_folder_merge(t, inbox, 7, &d2, NULL), ==, 0);
		collect_init(&c);
		g_assert_cmpint(tree_readdir(t, inbox, 0, FALSE, collect_cb, &c), ==, 0);
		g_assert_cmpuint(c.names->len, ==, 1999);
		g_assert_cmpstr(g_ptr_array_index(c.names, 1998), ==, last);
		collect_clear(&c);
	}
	for (guint32 i = 0; i < n; i++)
		g_free(subj[i]);
	g_free(subj);
	g_free(a);
	tree_free(t);
}

static void test_large(void)
{
	large_listing(FALSE);
	large_listing(TRUE);
}

struct race {
	struct tree *t;
	guint64 inbox;
	gint stop;
};

static void *race_reader(void *p)
{
	struct race *r = p;

	while (!g_atomic_int_get(&r->stop)) {
		struct tree_entry e;
		struct collect c;

		collect_init(&c);
		g_assert_cmpint(tree_readdir(r->t, r->inbox, 0, TRUE, collect_cb, &c), ==, 0);
		for (guint i = 0; i < c.entries->len; i++) {
			guint64 ino = g_array_index(c.entries, struct tree_entry, i).ino;

			if (tree_get(r->t, ino, TREE_WANT_NAME | TREE_WANT_FLAGS, &e) == 0)
				tree_entry_clear(&e);
			tree_forget(r->t, ino, 1);
		}
		collect_clear(&c);
		if (tree_lookup(r->t, r->inbox, "7.eml", TRUE, TREE_WANT_WIRE, &e) == 0) {
			tree_entry_clear(&e);
			tree_forget(r->t, e.ino, 1);
		}
	}
	return NULL;
}

/* Listings replaced while another thread reads: run under ASan / valgrind. */
/* The folders a walk comes to next: depth first, in name order, selectable. */
static void test_folders_after(void)
{
	struct tree *t = tree_new(NULL);
	g_autoptr(GArray) got = g_array_new(FALSE, FALSE, sizeof(guint64));
	static const char *const after_2024[] = { "Archive/2024/Q1", "Empty", "Entwürfe",
						   "INBOX" };
	static const char *const after_drafts[] = { "INBOX", "Lists/debian", "Project X" };

	apply(t, corpus, NULL);
	tree_folders_after(t, path_ino(t, "Archive/2024"), 4, got);
	g_assert_cmpuint(got->len, ==, G_N_ELEMENTS(after_2024));
	for (guint i = 0; i < got->len; i++)
		g_assert_cmpuint(g_array_index(got, guint64, i), ==, path_ino(t, after_2024[i]));

	/* "Lists" cannot be selected: its child comes, it does not. */
	g_array_set_size(got, 0);
	tree_folders_after(t, path_ino(t, "Entwürfe"), 3, got);
	g_assert_cmpuint(got->len, ==, G_N_ELEMENTS(after_drafts));
	for (guint i = 0; i < got->len; i++)
		g_assert_cmpuint(g_array_index(got, guint64, i), ==, path_ino(t, after_drafts[i]));

	/* The walk's end (the Cyrillic name sorts last), no room, no folder. */
	g_array_set_size(got, 0);
	tree_folders_after(t, path_ino(t, "Trash"), 10, got);
	g_assert_cmpuint(got->len, ==, 1);
	g_assert_cmpuint(g_array_index(got, guint64, 0), ==,
			 tree_find_folder(t, "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"));
	g_array_set_size(got, 0);
	tree_folders_after(t, tree_find_folder(t, "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"), 10, got);
	tree_folders_after(t, path_ino(t, "INBOX"), 0, got);
	tree_folders_after(t, 987654321, 10, got);
	g_assert_cmpuint(got->len, ==, 0);

	/* From the root: the whole walk. */
	tree_folders_after(t, TREE_ROOT_INO, 100, got);
	g_assert_cmpuint(got->len, ==, 11);
	tree_free(t);
}

static void test_threads(void)
{
	struct race r = { tree_new(NULL), 0, 0 };
	struct tree_msg_info a[64];
	GThread *th;

	apply(r.t, corpus, NULL);
	r.inbox = path_ino(r.t, "INBOX");
	for (guint i = 0; i < G_N_ELEMENTS(a); i++)
		a[i] = msg(i + 1, NULL, i % 2 ? "\\Seen" : NULL);
	th = g_thread_new("reader", race_reader, &r);
	for (guint round = 0; round < 300; round++) {
		g_autoptr(GArray) rm = tree_removed_new();

		/* Alternate halves, and a UIDVALIDITY change now and then. */
		g_assert_cmpint(tree_folder_set_messages(r.t, r.inbox, 1 + round / 50,
							 a + (round % 2) * 16, 48, rm), ==, 0);
		if (round % 100 == 99) {
			apply(r.t, courier, NULL);
			apply(r.t, corpus, NULL);
			/* INBOX is INBOX in both: same folder, same number. */
			g_assert_cmpuint(path_ino(r.t, "INBOX"), ==, r.inbox);
		}
	}
	g_atomic_int_set(&r.stop, 1);
	g_thread_join(th);
	tree_free(r.t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/tree/list-table", test_list_table);
	g_test_add_func("/tree/folder_mtime", test_folder_mtime);
	g_test_add_func("/tree/folder-attrs", test_folder_attrs);
	g_test_add_func("/tree/relist", test_relist);
	g_test_add_func("/tree/messages", test_messages);
	g_test_add_func("/tree/merge", test_merge);
	g_test_add_func("/tree/names-uid", test_names_uid);
	g_test_add_func("/tree/message-remove-and-keys", test_message_remove_and_keys);
	g_test_add_func("/tree/objects", test_objects);
	g_test_add_func("/tree/readdir-offsets", test_readdir_offsets);
	g_test_add_func("/tree/stream", test_stream);
	g_test_add_func("/tree/resurrect", test_resurrect);
	g_test_add_func("/tree/folders-after", test_folders_after);
	g_test_add_func("/tree/threads", test_threads);
	g_test_add_func("/tree/large", test_large);
	g_test_add_func("/tree/names-compact", test_names_compact);
	return g_test_run();
}
