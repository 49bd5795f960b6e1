/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/fs_common.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

void fs_reply_xattr_value(fuse_req_t req, const char *value, size_t size)
{
	fs_reply_xattr_names(req, value, strlen(value), size);
}

void fs_reply_xattr_names(fuse_req_t req, const char *names, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, len);
}

void fs_reply_statfs(fuse_req_t req, guint64 free_bytes, guint64 max_bytes)
{
	struct statvfs st = { 0 };
	guint64 free_blocks = MAX(free_bytes / 4096, 1);

	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = MAX(max_bytes / 4096, free_blocks);
	st.f_bfree = free_blocks;
	st.f_bavail = free_blocks;
	/* No inode limit of ours: a large constant, as network filesystems do. */
	st.f_files = 1000000;
	st.f_ffree = 1000000;
	st.f_favail = 1000000;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

void fs_want_readdirplus(struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}
