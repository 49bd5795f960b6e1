/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP view's extended attributes: user.mailfs.status on the root,
 * user.imap.flags (read-write) and user.mail.* (the decoded headers,
 * read-only) on messages.
 */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <string.h>

#include "model/append.h"
#include "util/log.h"

static const char *const message_xattrs[] = {
	FLAGS_XATTR, "user.mail.subject", "user.mail.from", "user.mail.to", "user.mail.date",
	"user.mail.message-id",
};

static void getxattr_staged(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino,
			    const char *name, size_t size)
{
	gboolean exists;
	g_autofree char *flags = staging_get_flags(fs->staging, ino, &exists);

	if (flags && strcmp(name, FLAGS_XATTR) == 0)
		fs_reply_xattr_value(req, flags, size);
	else
		fuse_reply_err(req, exists ? ENODATA : ENOENT);
}

/* The value of attribute `name` (user.mail.*) of message ino, a copy ("" for
   a header the message lacks): 0, -ENODATA for a name that is none of
   them, or the error of getting the headers. */
static int header_value(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino,
			const char *name, char **out)
{
	struct mail_headers h = { 0 };
	const char *v;
	struct lease l;
	gboolean known;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_headers(fs->account, &l, ino, &h);
	fs_lease_end(req, &l);
	if (rc < 0)
		return rc;
	v = imap_account_header_field(&h, name, &known);
	*out = known ? g_strdup(v ? v : "") : NULL;
	mail_headers_clear(&h);
	return known ? 0 : -ENODATA;
}

/* user.mail.* of message ino. */
static void getxattr_header(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino,
			    const char *name, size_t size)
{
	g_autofree char *value = NULL;
	int rc = header_value(fs, req, ino, name, &value);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fs_reply_xattr_value(req, value, size);
}

void fs_imap_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	int rc;

	/* Only user.* names exist here. ENOTSUP for the others (security.selinux,
	 * system.posix_acl_access), not ENODATA: ls -l asks for both on every
	 * file, and after ENOTSUP it stops asking for the whole mount, where
	 * ENODATA costs two round trips through the daemon per file. */
	if (!g_str_has_prefix(name, "user.")) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (search_is_node(ino)) {
		fs_search_getxattr(req, ino, name, size);
		return;
	}
	if (parts_is_node(ino)) {
		fs_parts_getxattr(req, ino, name, size);
		return;
	}
	if (ino == FUSE_ROOT_ID && strcmp(name, STATUS_XATTR) == 0) {
		g_autofree char *text = imap_account_status(fs->account);

		fs_reply_xattr_value(req, text, size);
		return;
	}
	if (staging_is_staged(ino)) {
		getxattr_staged(fs, req, ino, name, size);
		return;
	}
	rc = tree_get(fs->tree, ino, TREE_WANT_FLAGS, &e);
	if (rc < 0 || e.gone || e.kind != TREE_MESSAGE) {
		tree_entry_clear(&e);
		fuse_reply_err(req, rc < 0 ? -rc : e.gone ? ENOENT : ENODATA);
		return;
	}
	if (strcmp(name, FLAGS_XATTR) == 0) {
		fs_reply_xattr_value(req, e.flags ? e.flags : "", size);
		tree_entry_clear(&e);
		return;
	}
	tree_entry_clear(&e);
	if (!g_str_has_prefix(name, "user.mail."))
		fuse_reply_err(req, ENODATA);
	else
		getxattr_header(fs, req, ino, name, size);
}

void fs_imap_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	g_autoptr(GString) names = g_string_new(NULL);
	int rc;

	/* The root lists nothing: user.mailfs.status is read by name
	   (fs_common.h says why). */
	if (search_is_node(ino)) {
		fs_search_listxattr(req, ino, size);
		return;
	}
	if (parts_is_node(ino)) {
		fs_parts_listxattr(req, ino, size);
		return;
	}
	if (ino == FUSE_ROOT_ID) {
	} else if (staging_is_staged(ino)) {
		gboolean exists;
		g_autofree char *flags = staging_get_flags(fs->staging, ino, &exists);

		if (flags)
			g_string_append_len(names, FLAGS_XATTR, sizeof(FLAGS_XATTR));
	} else {
		rc = tree_get(fs->tree, ino, 0, &e);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		if (e.kind == TREE_MESSAGE)
			for (size_t i = 0; i < G_N_ELEMENTS(message_xattrs); i++)
				g_string_append_len(names, message_xattrs[i],
						    (gssize)strlen(message_xattrs[i]) + 1);
	}
	fs_reply_xattr_names(req, names->str, names->len, size);
}

/* A request that sets a read-only attribute to the value it has (rsync -X
   restoring what it copied) is accepted; another value is EPERM. */
static int check_unchanged(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino,
			   const char *name, const char *value, size_t size)
{
	g_autofree char *current = NULL;
	int rc = header_value(fs, req, ino, name, &current);

	if (rc == -ENODATA)
		return -ENOTSUP;
	if (rc == 0 && (strlen(current) != size || memcmp(current, value, size) != 0))
		rc = -EPERM;
	return rc;
}

static int store_flags(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino, const char *flags)
{
	struct lease l;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_store_flags(fs->account, &l, ino, flags);
	fs_lease_end(req, &l);
	return rc;
}

/* 0 when ino is a message of the server's, -EPERM for the root and folders
   (flags and headers are a message's only), -ENOENT for one gone. */
static int message_target(struct mfs_imap_fs *fs, fuse_ino_t ino)
{
	struct tree_entry e = { 0 };
	int rc;

	if (ino == FUSE_ROOT_ID)
		return -EPERM;
	rc = tree_get(fs->tree, ino, 0, &e);
	if (rc == 0 && e.gone)
		rc = -ENOENT;
	else if (rc == 0 && e.kind != TREE_MESSAGE)
		rc = -EPERM;
	tree_entry_clear(&e);
	return rc;
}

/* The message attributes: the flags, and the headers. */
static gboolean is_message_xattr(const char *name)
{
	return strcmp(name, FLAGS_XATTR) == 0 || g_str_has_prefix(name, "user.mail.");
}

void fs_imap_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		      size_t size, int flags)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	gboolean staged = staging_is_staged(ino);
	g_autofree char *canonical = NULL;
	GError *err = NULL;
	int rc;

	(void)flags;
	if (fs_hidden_refuse(req, ino, NULL))
		return;
	if (ino == FUSE_ROOT_ID && strcmp(name, STATUS_XATTR) == 0) {
		fuse_reply_err(req, 0); /* accepted and ignored (fs_common.h) */
		return;
	}
	if (!staged && is_message_xattr(name) && (rc = message_target(fs, ino)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (strcmp(name, FLAGS_XATTR) == 0) {
		if (!append_parse_flags(value, size, &canonical, &err)) {
			mfs_log_info("%s: %s", FLAGS_XATTR, err->message);
			g_error_free(err);
			fuse_reply_err(req, EINVAL);
			return;
		}
		fs_reply_rc(req, staged ? staging_set_flags(fs->staging, ino, canonical) :
					  store_flags(fs, req, ino, canonical));
		return;
	}
	if (!g_str_has_prefix(name, "user.mail.")) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	/* Headers are the message's: a new file takes them from its bytes. */
	if (staged) {
		fuse_reply_err(req, 0);
		return;
	}
	fs_reply_rc(req, check_unchanged(fs, req, ino, name, value, size));
}

void fs_imap_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	int rc = -EPERM;

	if (fs_hidden_refuse(req, ino, NULL))
		return;
	/* Removing the flags attribute clears the flags (a message's only). */
	if (strcmp(name, FLAGS_XATTR) == 0 && staging_is_staged(ino))
		rc = staging_set_flags(fs->staging, ino, NULL);
	else if (strcmp(name, FLAGS_XATTR) == 0 && (rc = message_target(fs, ino)) == 0)
		rc = store_flags(fs, req, ino, "");
	fs_reply_rc(req, rc);
}
