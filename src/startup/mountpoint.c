/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "startup/mountpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "util/log.h"

/*
 * "/dev/fd/N": the caller opened /dev/fuse and mounted it itself, as
 * mount.fuse3 -o drop_privileges does; fuse_session_mount() then serves fd N
 * (libfuse parses the name the same way). There is no directory to check.
 */
static gboolean premounted_fd(const char *mp)
{
	unsigned fd;
	int len = -1;
	struct stat st;

	if (sscanf(mp, "/dev/fd/%u%n", &fd, &len) != 1 || len < 0 || (size_t)len != strlen(mp) ||
	    fd > INT_MAX)
		return FALSE;
	return fstat((int)fd, &st) == 0 && S_ISCHR(st.st_mode);
}

/* A dead FUSE mount: its daemon ended (or the connection was aborted). */
static gboolean is_dead_errno(int e)
{
	return e == ENOTCONN || e == ECONNABORTED;
}

/*
 * Is path on a dead FUSE mount? statfs() always asks the file system, where
 * stat() may be answered from the kernel's attribute cache for a while after
 * the daemon died. Sets errno.
 */
static gboolean is_dead(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) != 0 && is_dead_errno(errno);
}

/* The path as a shell word, for a command the user can paste. */
static char *shell_word(const char *path)
{
	for (const char *p = path; *p; p++) {
		if (!g_ascii_isalnum(*p) && !strchr("/._+-,:@%~=", *p))
			return g_shell_quote(path);
	}
	return g_strdup(path);
}

static void set_dead(const char *mp, const char *dead, int e, GError **err)
{
	g_autofree char *word = shell_word(dead);

	if (strcmp(mp, dead) == 0)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR,
			    "mountpoint %s is a dead mount (%s): the program that mounted it "
			    "ended without unmounting; unmount it with: fusermount3 -uz %s",
			    mp, g_strerror(e), word);
	else
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR,
			    "mountpoint %s: %s: %s above it is a dead mount; unmount it with: "
			    "fusermount3 -uz %s",
			    mp, g_strerror(e), dead, word);
}

/* The first directory on the way to path that is a dead mount, or NULL. */
static char *dead_on_the_way(const char *path)
{
	g_autofree char *abs = g_canonicalize_filename(path, NULL);
	GString *prefix = g_string_new(NULL);
	g_auto(GStrv) parts = g_strsplit(abs, "/", -1);

	for (char **p = parts; *p; p++) {
		if (!**p)
			continue;
		g_string_append_c(prefix, '/');
		g_string_append(prefix, *p);
		if (is_dead(prefix->str))
			return g_string_free(prefix, FALSE);
	}
	g_string_free(prefix, TRUE);
	return NULL;
}

char *mountpoint_resolve(const char *given, GError **err)
{
	g_autofree char *copy = NULL;
	char *full, *slash, *dir;
	const char *last, *parent;
	int e;

	if (premounted_fd(given))
		return g_strdup(given);
	full = realpath(given, NULL);
	if (full) {
		char *out = g_strdup(full);

		free(full);
		return out;
	}
	e = errno;
	/* The last name may be a dead mount or missing: resolve its directory.
	   As libfuse's fuse_mnt_resolve_path() does, for the same reason. */
	copy = g_strdup(given);
	for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
		copy[n - 1] = '\0';
	slash = strrchr(copy, '/');
	if (!slash) {
		parent = ".";
		last = copy;
	} else {
		*slash = '\0';
		parent = slash == copy ? "/" : copy;
		last = slash + 1;
	}
	if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0 || !*last)
		goto fail;
	dir = realpath(parent, NULL);
	if (!dir) {
		e = errno;
		goto fail;
	}
	full = g_build_filename(dir, last, NULL);
	free(dir);
	return full;

fail : {
	g_autofree char *dead = is_dead_errno(e) ? dead_on_the_way(given) : NULL;

	if (dead)
		set_dead(given, dead, e, err);
	else
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "mountpoint %s: %s",
			    given, g_strerror(e));
	return NULL;
}
}

/*
 * Is the mount on mp (the top one) a mailfs mount of this user? Only such a
 * dead mount is removed without asking: it can hold nothing but a mailbox
 * that is on the server anyway.
 */
static gboolean dead_mount_is_ours(const char *mp)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent ent;
	char buf[4 * PATH_MAX];
	gboolean ours = FALSE;
	g_autofree char *uid = g_strdup_printf("user_id=%u", (unsigned)getuid());

	if (!f)
		return FALSE;
	while (getmntent_r(f, &ent, buf, sizeof(buf))) {
		if (strcmp(ent.mnt_dir, mp) != 0)
			continue;
		/* Later lines are mounted over earlier ones: the last one counts. */
		ours = strcmp(ent.mnt_type, "fuse.mailfs") == 0 && hasmntopt(&ent, uid) != NULL;
	}
	endmntent(f);
	return ours;
}

/* Lazily unmount a dead mount: directly when allowed (root), else as libfuse does. */
static gboolean unmount_dead(const char *mp)
{
	g_autofree char *path = g_strdup(mp);
	char u[] = "-u", z[] = "-z", q[] = "-q", dashes[] = "--", prog[] = "fusermount3";
	char *argv[] = { prog, u, z, q, dashes, path, NULL };
	int status = -1;

	if (umount2(mp, MNT_DETACH) == 0)
		return TRUE;
	if (!g_spawn_sync(NULL, argv, NULL,
			  G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
				  G_SPAWN_STDERR_TO_DEV_NULL | G_SPAWN_STDIN_FROM_DEV_NULL,
			  NULL, NULL, NULL, NULL, &status, NULL))
		return FALSE;
	return g_spawn_check_wait_status(status, NULL);
}

static gboolean is_empty_dir(const char *mp, GError **err)
{
	DIR *d = opendir(mp);
	struct dirent *de;
	gboolean empty = TRUE;

	if (!d) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "mountpoint %s: %s",
			    mp, g_strerror(errno));
		return FALSE;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = FALSE;
			break;
		}
	}
	closedir(d);
	if (!empty)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "mountpoint %s is not empty: mounting would hide its files until "
			    "unmounted; use an empty directory, or -o nonempty to mount over them",
			    mp);
	return empty;
}

gboolean mountpoint_check(const char *mp, gboolean nonempty, GError **err)
{
	struct stat st, parent;
	g_autofree char *up = NULL;

	if (premounted_fd(mp))
		return TRUE;
	if (is_dead(mp)) {
		int e = errno;
		/* realpath() passes over a dead mount's root: it may be above mp. */
		g_autofree char *dead = dead_on_the_way(mp);

		if (!dead || strcmp(dead, mp) != 0 || !dead_mount_is_ours(mp) ||
		    !unmount_dead(mp)) {
			set_dead(mp, dead ? dead : mp, e, err);
			return FALSE;
		}
		mfs_log_info("removed the dead mailfs mount on %s (its daemon had ended "
			     "without unmounting)",
			     mp);
	}
	if (stat(mp, &st) != 0) {
		int e = errno;

		if (is_dead_errno(e)) /* another dead mount under the one removed */
			set_dead(mp, mp, e, err);
		else
			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e),
				    "mountpoint %s: %s", mp, g_strerror(e));
		return FALSE;
	}
	if (!S_ISDIR(st.st_mode)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR,
			    "mountpoint %s is not a directory", mp);
		return FALSE;
	}
	up = g_build_filename(mp, "..", NULL);
	if (stat(up, &parent) == 0 &&
	    (st.st_dev != parent.st_dev || st.st_ino == parent.st_ino)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "mountpoint %s is busy: something is already mounted there", mp);
		return FALSE;
	}
	return nonempty || is_empty_dir(mp, err);
}
