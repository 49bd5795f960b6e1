/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The commands that change the server: CREATE, DELETE, RENAME of folders;
 * MOVE (or COPY and a UID EXPUNGE of that UID alone), STORE of flags and
 * APPEND of messages. Nothing is ever sent on a read-only mount (-EROFS).
 * A refusal is logged once with the server's words; the errno comes from
 * the one table (protocol/errmap.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/imap_account_internal.h"
#include "model/append.h"
#include "model/listing_index.h"
#include "model/names.h"
#include "protocol/mutf7.h"
#include "util/log.h"

static int refuse_readonly(const struct imap_account *a)
{
	/* `readonly` (or -o ro): nothing is ever sent. */
	return a->opts->readonly ? -EROFS : 0;
}

/* The message or folder `name` in parent, as the tree knows it (after a refresh). */
static int lookup_entry(struct imap_account *a, struct lease *l, guint64 parent,
			const char *name, unsigned want, struct tree_entry *e)
{
	int rc = imap_account_refresh_dir(a, l, parent);

	if (rc == -EINTR)
		return rc;
	return tree_lookup(a->tree, parent, name, FALSE, want, e);
}

/* The wire name of a new child `name` (a path component) of folder parent. */
static int child_wire(struct imap_account *a, guint64 parent, const char *name, char **out)
{
	g_autofree char *key = tree_folder_key(a->tree, parent);
	g_autofree char *plain = NULL;
	g_autofree char *enc = NULL;
	size_t len;
	char delim;

	if (!key)
		return -ENOENT;
	plain = names_unescape(name, &len, NULL);
	/* A name the escape could not have made, or one holding NUL: not a mailbox name. */
	if (!plain || strlen(plain) != len || !*plain)
		return -EINVAL;
	mfs_mutex_lock(&a->lock);
	delim = a->delim;
	mfs_mutex_unlock(&a->lock);
	if (delim && strchr(plain, delim))
		return -EINVAL;
	enc = mutf7_encode(plain, NULL);
	if (!enc)
		return -EINVAL;
	if (!*key)
		*out = g_steal_pointer(&enc);
	else if (!delim)
		return -EPERM; /* a flat namespace has no children */
	else
		*out = g_strdup_printf("%s%c%s", key, delim, enc);
	return 0;
}

/* INBOX and the Trash mailbox are never renamed or removed. */
static gboolean protected_mailbox(struct imap_account *a, const char *wire)
{
	g_autofree char *trash = NULL;

	if (!wire)
		return FALSE;
	trash = account_trash(a);
	return g_strcmp0(trash, wire) == 0 || g_ascii_strcasecmp(wire, "INBOX") == 0;
}

void account_log_refused(const char *what, const struct imap_result *res)
{
	if (res->status == IMAP_STATUS_NONE)
		return; /* no answer at all: the link's failure is logged by the caller */
	mfs_log_info("%s refused: %s%s%s%s", what, res->code ? "[" : "", res->code ? res->code : "",
		     res->code ? "] " : "", res->text ? res->text : "");
}

/* Run one command that changes the server; -errno through the one table. */
static int run_change(struct imap_session *s, const char *what, GError **err, const char *fmt,
		      ...) G_GNUC_PRINTF(4, 5);

static int run_change(struct imap_session *s, const char *what, GError **err, const char *fmt,
		      ...)
{
	va_list ap;
	struct imap_result res = { 0 };
	int rc;

	va_start(ap, fmt);
	g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	rc = imap_run(s, NULL, &res, err, "%s", cmd);
	if (rc < 0)
		account_log_refused(what, &res);
	/* A refusal the server gave no code for (Courier, Cyrus: "NO Invalid
	   mailbox name", "NO Permission denied") is the server saying no, not
	   a broken link: EIO would read as one. CREATE is a permission on the
	   parent (EACCES), the others on the mailbox or message (EPERM). */
	if (rc == -EIO && res.status == IMAP_STATUS_NO && !res.code)
		rc = strcmp(what, "CREATE") == 0 ? -EACCES : -EPERM;
	imap_result_clear(&res);
	return rc;
}

static gboolean note_top_level(void *ud, const char *name, const struct tree_entry *e,
			       guint64 next_off)
{
	gboolean *others = ud;

	(void)next_off;
	if (e->kind == TREE_FOLDER && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	    strcmp(name, "INBOX") != 0)
		*others = TRUE;
	return TRUE;
}

/* A folder refused at the top: where the server keeps every folder under
   INBOX (an "INBOX." personal namespace, as Courier and Cyrus have it), say
   where new ones go. */
static void hint_inbox_namespace(struct imap_account *a, const char *name)
{
	gboolean others = FALSE;
	char delim;

	mfs_mutex_lock(&a->lock);
	delim = a->delim;
	mfs_mutex_unlock(&a->lock);
	(void)tree_readdir(a->tree, TREE_ROOT_INO, 0, FALSE, note_top_level, &others);
	if (delim && !others) {
		g_autofree char *esc = mfs_log_escape(name, strlen(name), 200);

		mfs_log_info("this server keeps its folders under INBOX: make new ones there "
			     "(mkdir INBOX/%s)",
			     esc);
	}
}

int imap_account_mkdir(struct imap_account *a, struct lease *l, guint64 parent,
		       const char *name)
{
	g_autofree char *wire = NULL;
	g_autofree char *q = NULL;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	if ((rc = refuse_readonly(a)) < 0 || (rc = child_wire(a, parent, name, &wire)) < 0)
		return rc;
	q = imap_quote(wire);
	rc = q ? lease_borrow(l, NULL, &s) : -EINVAL;
	if (rc == 0) {
		rc = run_change(s, "CREATE", &err, "CREATE %s", q);
		lease_give_back(l);
		if (rc < 0)
			rc = lease_errno(l, rc, err, "CREATE");
		if (rc == -EACCES && parent == TREE_ROOT_INO)
			hint_inbox_namespace(a, name);
	}
	if (rc == 0)
		imap_account_refresh_list(a, TRUE, NULL);
	return rc;
}

static gboolean count_entry(void *ud, const char *name, const struct tree_entry *e,
			    guint64 next_off)
{
	guint *n = ud;

	(void)e;
	(void)next_off;
	if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
		(*n)++;
	return TRUE;
}

/* DELETE of mailbox key (quoted q); the session is left on another one. */
static int delete_mailbox(struct lease *l, const char *key, const char *q)
{
	struct imap_session *s;
	GError *err = NULL;
	int rc = lease_borrow(l, NULL, &s);

	if (rc < 0)
		return rc;
	/* A selected mailbox cannot always be deleted: select none. */
	if (g_strcmp0(imap_session_selected(s), key) == 0)
		imap_select(s, "INBOX", TRUE, NULL, NULL);
	rc = run_change(s, "DELETE", &err, "DELETE %s", q);
	lease_give_back(l);
	return rc < 0 ? lease_errno(l, rc, err, "DELETE") : 0;
}

int imap_account_rmdir(struct imap_account *a, struct lease *l, guint64 parent,
		       const char *name)
{
	struct tree_entry e = { 0 };
	g_autofree char *key = NULL;
	g_autofree char *q = NULL;
	guint children = 0;
	int rc;

	if ((rc = refuse_readonly(a)) < 0 ||
	    (rc = lookup_entry(a, l, parent, name, TREE_WANT_WIRE, &e)) < 0)
		return rc;
	if (e.kind != TREE_FOLDER) {
		tree_entry_clear(&e);
		return -ENOTDIR;
	}
	key = tree_folder_key(a->tree, e.ino);
	if (protected_mailbox(a, key)) {
		tree_entry_clear(&e);
		return -EPERM;
	}
	/* What it holds now, not what a listing said a while ago. */
	rc = imap_account_refresh_folder(a, l, e.ino, TRUE);
	if (rc == 0)
		rc = tree_readdir(a->tree, e.ino, 0, FALSE, count_entry, &children);
	if (rc == 0 && children > 0)
		rc = -ENOTEMPTY;
	q = key ? imap_quote(key) : NULL;
	if (rc == 0 && !q)
		rc = -EINVAL;
	if (rc == 0) {
		/* Other idle sessions on it would be ended by the server. */
		pool_close_selected(a->pool, key);
		rc = delete_mailbox(l, key, q);
	}
	if (rc == 0) {
		g_autofree char *dir = g_build_filename(a->opts->cache_dir, "listings", NULL);

		mcache_drop_mailbox(a->cache, key, 0);
		lindex_remove(dir, key);
		imap_account_refresh_list(a, TRUE, NULL);
	}
	tree_entry_clear(&e);
	return rc;
}

/* \Deleted + UID EXPUNGE of that UID alone: never an expunge of what others marked. */
static int expunge_uid(struct imap_session *s, guint32 uid, GError **err)
{
	int rc;

	if (!imap_session_has(s, IMAP_CAP_UIDPLUS)) {
		mfs_log_warn("%s has no UIDPLUS: refusing to expunge, which could remove "
			     "messages others marked \\Deleted",
			     imap_session_peer(s));
		return -EPERM;
	}
	rc = run_change(s, "STORE", err, "UID STORE %u +FLAGS.SILENT (\\Deleted)", uid);
	if (rc == 0)
		rc = run_change(s, "UID EXPUNGE", err, "UID EXPUNGE %u", uid);
	return rc;
}

/* Move (or copy and expunge) message uid of the selected mailbox to dest. */
static int move_uid(struct imap_session *s, guint32 uid, const char *dest, GError **err)
{
	g_autofree char *q = imap_quote(dest);
	int rc;

	if (!q)
		return -EINVAL;
	if (imap_session_has(s, IMAP_CAP_MOVE))
		return run_change(s, "MOVE", err, "UID MOVE %u %s", uid, q);
	if (!imap_session_has(s, IMAP_CAP_UIDPLUS)) {
		mfs_log_warn("%s has neither MOVE nor UIDPLUS: refusing to move, which would "
			     "need an expunge of messages others marked \\Deleted",
			     imap_session_peer(s));
		return -EPERM;
	}
	rc = run_change(s, "COPY", err, "UID COPY %u %s", uid, q);
	if (rc == 0)
		rc = expunge_uid(s, uid, err);
	return rc;
}

/* Message e, selected read-write under the UIDVALIDITY it was listed with:
   expunged, or moved to dest. With label_only, on Gmail (X-GM-EXT-1) it
   is expunged instead of moved, which takes only this folder's label off
   (mailfs(1), Links); *moved tells which was done (may be NULL). */
static int change_message(struct lease *l, const struct tree_entry *e, const char *dest,
			  gboolean label_only, gboolean *moved)
{
	struct imap_session *s;
	GError *err = NULL;
	int rc = lease_borrow(l, e->wire, &s);

	if (rc < 0)
		return rc;
	if (label_only && imap_session_has(s, IMAP_CAP_X_GM_EXT_1))
		dest = NULL;
	if (moved)
		*moved = dest != NULL;
	rc = fetch_ensure_selected(s, e->wire, FALSE, e->uidvalidity, &err);
	if (rc == 0)
		rc = dest ? move_uid(s, e->uid, dest, &err) : expunge_uid(s, e->uid, &err);
	lease_give_back(l);
	return rc < 0 ? lease_errno(l, rc, err, e->wire) : 0;
}

/* Whether folder ino is Gmail's All Mail (SPECIAL-USE \All): a name there
   is never only a label. */
static gboolean all_mail(struct imap_account *a, guint64 ino)
{
	struct tree_entry f = { 0 };
	gboolean all = tree_get(a->tree, ino, 0, &f) == 0 && (f.mbox_attrs & IMAP_MBOX_ALL);

	tree_entry_clear(&f);
	return all;
}

static void removed_message(struct imap_account *a, const struct tree_entry *e)
{
	g_autoptr(GArray) removed = tree_removed_new();

	tree_message_remove(a->tree, e->parent, e->uid, removed);
	account_removed(a, removed);
}

/* rm of a message -> MOVE to Trash, or expunge (inside Trash, delete=expunge). */
int account_remove_message(struct imap_account *a, struct lease *l, const struct tree_entry *e)
{
	g_autofree char *trash = account_trash(a);
	gboolean expunge, moved = FALSE;
	int rc;

	expunge = a->opts->delete_mode == MFS_DELETE_EXPUNGE || g_strcmp0(trash, e->wire) == 0;
	if (!expunge && !trash) {
		mfs_log_warn("rm of %s: no Trash mailbox (set trash= or delete=expunge)", e->name);
		return -EPERM;
	}
	rc = change_message(l, e, expunge ? NULL : trash, e->nlink > 1 && !all_mail(a, e->parent),
			    &moved);
	if (rc == 0) {
		removed_message(a, e);
		if (moved) {
			guint64 t = tree_find_folder(a->tree, trash);

			if (t)
				account_mark_stale(a, t);
		}
	}
	return rc;
}

int imap_account_remove(struct imap_account *a, struct lease *l, guint64 parent,
			const char *name)
{
	struct tree_entry e = { 0 };
	int rc;

	if ((rc = refuse_readonly(a)) < 0 ||
	    (rc = lookup_entry(a, l, parent, name, TREE_WANT_WIRE | TREE_WANT_NAME, &e)) < 0)
		return rc;
	rc = e.kind == TREE_MESSAGE ? account_remove_message(a, l, &e) : -EISDIR;
	tree_entry_clear(&e);
	return rc;
}

int imap_account_expunge(struct imap_account *a, struct lease *l, const char *wire,
			guint32 uidvalidity, guint32 uid)
{
	struct tree_entry e = { 0 };
	int rc;

	if (refuse_readonly(a) < 0)
		return -EROFS;
	e.wire = g_strdup(wire);
	e.uid = uid;
	e.uidvalidity = uidvalidity;
	rc = change_message(l, &e, NULL, FALSE, NULL);
	tree_entry_clear(&e);
	return rc;
}

static int rename_message(struct imap_account *a, struct lease *l, const struct tree_entry *e,
			  guint64 newparent)
{
	struct tree_entry dest = { 0 };
	int rc;

	if (e->parent == newparent)
		return -EPERM; /* names are the server's: a message cannot be renamed */
	rc = tree_get(a->tree, newparent, TREE_WANT_WIRE, &dest);
	if (rc < 0 || dest.kind != TREE_FOLDER || !dest.wire) {
		tree_entry_clear(&dest);
		return rc < 0 ? rc : -EPERM;
	}
	rc = change_message(l, e, dest.wire, FALSE, NULL);
	if (rc == 0) {
		removed_message(a, e);
		account_mark_stale(a, newparent);
	}
	tree_entry_clear(&dest);
	return rc;
}

static int rename_folder(struct imap_account *a, struct lease *l, const struct tree_entry *e,
			 guint64 newparent, const char *newname)
{
	g_autofree char *key = tree_folder_key(a->tree, e->ino);
	g_autofree char *to = NULL;
	g_autofree char *qf = NULL;
	g_autofree char *qt = NULL;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	if (!key || protected_mailbox(a, key))
		return -EPERM;
	rc = child_wire(a, newparent, newname, &to);
	if (rc < 0)
		return rc;
	qf = imap_quote(key);
	qt = imap_quote(to);
	if (!qf || !qt)
		return -EINVAL;
	pool_close_selected(a->pool, key);
	rc = lease_borrow(l, NULL, &s);
	if (rc == 0) {
		if (g_strcmp0(imap_session_selected(s), key) == 0)
			imap_select(s, "INBOX", TRUE, NULL, NULL);
		rc = run_change(s, "RENAME", &err, "RENAME %s %s", qf, qt);
		lease_give_back(l);
		if (rc < 0)
			rc = lease_errno(l, rc, err, "RENAME");
	}
	if (rc == 0)
		imap_account_refresh_list(a, TRUE, NULL);
	return rc;
}

int imap_account_rename(struct imap_account *a, struct lease *l, guint64 parent,
			const char *name, guint64 newparent, const char *newname)
{
	struct tree_entry e = { 0 };
	int rc;

	if ((rc = refuse_readonly(a)) < 0 ||
	    (rc = lookup_entry(a, l, parent, name, TREE_WANT_WIRE | TREE_WANT_NAME, &e)) < 0)
		return rc;
	if (e.kind == TREE_MESSAGE)
		rc = rename_message(a, l, &e, newparent);
	else
		rc = rename_folder(a, l, &e, newparent, newname);
	tree_entry_clear(&e);
	return rc;
}

/* STORE flags on message e (one name). *gmail: the server keeps flags per
   message (X-GM-EXT-1), so one name's STORE is every name's. */
/* One change of message e (one name), on its mailbox selected under the
   UIDVALIDITY e was listed with (read-only is enough for a COPY). *gmail
   (may be NULL): whether the server is Gmail (X-GM-EXT-1), which keeps
   flags per message. */
static int run_on(struct lease *l, const struct tree_entry *e, gboolean readonly,
		  gboolean *gmail, const char *what, const char *fmt, ...) G_GNUC_PRINTF(6, 7);

static int run_on(struct lease *l, const struct tree_entry *e, gboolean readonly,
		  gboolean *gmail, const char *what, const char *fmt, ...)
{
	g_autofree char *cmd = NULL;
	struct imap_session *s;
	GError *err = NULL;
	va_list ap;
	int rc = lease_borrow(l, e->wire, &s);

	if (rc < 0)
		return rc;
	va_start(ap, fmt);
	cmd = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (gmail)
		*gmail = imap_session_has(s, IMAP_CAP_X_GM_EXT_1);
	rc = fetch_ensure_selected(s, e->wire, readonly, e->uidvalidity, &err);
	if (rc == 0)
		rc = run_change(s, what, &err, "%s", cmd);
	lease_give_back(l);
	return rc < 0 ? lease_errno(l, rc, err, e->wire) : 0;
}

/* user.imap.flags of ino: stored on every name of a message in several
   folders, since a server with OBJECTID (Cyrus) keeps flags per mailbox;
   the representative's first (mailfs(1), Links). */
int imap_account_store_flags(struct imap_account *a, struct lease *l, guint64 ino,
			     const char *flags)
{
	g_autoptr(GArray) names = NULL;
	gboolean gmail = FALSE;
	int rc;

	if ((rc = refuse_readonly(a)) < 0)
		return rc;
	names = tree_message_names(a->tree, ino, TREE_WANT_WIRE);
	if (!names)
		return -ENOENT; /* a folder, or a message gone meanwhile */
	for (guint i = 0; i < names->len && rc == 0 && !gmail; i++) {
		const struct tree_entry *e = &g_array_index(names, struct tree_entry, i);

		if (e->wire)
			rc = run_on(l, e, FALSE, &gmail, "STORE", "UID STORE %u FLAGS.SILENT (%s)",
				    e->uid, flags);
	}
	if (rc == 0)
		tree_message_set_flags(a->tree, ino, flags);
	return rc;
}

int imap_account_link(struct imap_account *a, struct lease *l, guint64 ino, guint64 newparent,
		      struct tree_entry *out)
{
	struct tree_entry e = { 0 }, dest = { 0 };
	g_autofree char *q = NULL;
	int rc;

	if ((rc = refuse_readonly(a)) < 0)
		return rc;
	if (!TREE_IS_OBJECT(ino))
		return -EPERM; /* no object ids: the mount has no hard links */
	rc = tree_get(a->tree, newparent, TREE_WANT_WIRE, &dest);
	if (rc == 0 && (dest.kind != TREE_FOLDER || !dest.wire))
		rc = -EPERM;
	if (rc == 0 && (rc = imap_account_refresh_dir(a, l, newparent)) == -EIO)
		rc = 0; /* offline: the COPY below says so */
	if (rc == 0 && tree_folder_object(a->tree, newparent, ino, FALSE, 0, &e) == 0)
		rc = -EEXIST;
	tree_entry_clear(&e);
	if (rc == 0 && (rc = tree_get(a->tree, ino, TREE_WANT_WIRE, &e)) == 0 && (e.gone || !e.wire))
		rc = -ENOENT;
	if (rc == 0 && !(q = imap_quote(dest.wire)))
		rc = -EINVAL;
	if (rc == 0)
		rc = run_on(l, &e, TRUE, NULL, "COPY", "UID COPY %u %s", e.uid, q);
	if (rc == 0) {
		account_mark_stale(a, newparent);
		imap_account_refresh_folder(a, l, newparent, TRUE);
		if (tree_folder_object(a->tree, newparent, ino, TRUE, TREE_WANT_NAME, out) != 0) {
			mfs_log_warn("ln into %s: the server made a copy without the message's "
				     "identity (OBJECTID): it is a file of its own",
				     dest.wire);
			rc = -EIO;
		}
	}
	tree_entry_clear(&e);
	tree_entry_clear(&dest);
	return rc;
}
