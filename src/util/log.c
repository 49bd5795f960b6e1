/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "util/lock.h"

static unsigned enabled_cats;
static gboolean to_syslog;
static mfs_mutex log_lock = MFS_MUTEX_INIT;

gboolean mfs_log_parse_categories(const char *spec, unsigned *out, GError **err)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{ "imap", MFS_LOG_IMAP },
		{ "pop3", MFS_LOG_POP3 },
		{ "fuse", MFS_LOG_FUSE },
		{ "cache", MFS_LOG_CACHE },
		{ "all", MFS_LOG_IMAP | MFS_LOG_POP3 | MFS_LOG_FUSE | MFS_LOG_CACHE },
		{ "none", 0 },
	};
	unsigned cats = 0;
	g_auto(GStrv) words = g_strsplit(spec, ",", -1);

	for (char **w = words; *w; w++) {
		const char *word = g_strstrip(*w);
		gboolean found = FALSE;

		if (!*word)
			continue;
		for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
			if (strcmp(word, names[i].name) == 0) {
				cats |= names[i].bit;
				found = TRUE;
			}
		}
		if (!found) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "unknown log category '%s' (known: imap, pop3, fuse, cache)",
				    word);
			return FALSE;
		}
	}
	*out = cats;
	return TRUE;
}

void mfs_log_enable(unsigned categories)
{
	g_atomic_int_set((int *)&enabled_cats, (int)categories);
}

gboolean mfs_log_enabled(enum mfs_log_cat cat)
{
	return ((unsigned)g_atomic_int_get((int *)&enabled_cats) & cat) != 0;
}

void mfs_log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	to_syslog = TRUE;
}

static void emit(int prio, const char *prefix, const char *fmt, va_list ap) G_GNUC_PRINTF(3, 0);

static void emit(int prio, const char *prefix, const char *fmt, va_list ap)
{
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);

	if (to_syslog) {
		syslog(prio, "%s%s", prefix, msg);
		return;
	}
	mfs_mutex_lock(&log_lock);
	fprintf(stderr, "mailfs: %s%s\n", prefix, msg);
	mfs_mutex_unlock(&log_lock);
}

void mfs_log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_ERR, "", fmt, ap);
	va_end(ap);
}

void mfs_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_WARNING, "warning: ", fmt, ap);
	va_end(ap);
}

void mfs_log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_INFO, "", fmt, ap);
	va_end(ap);
}

void mfs_log_debug(enum mfs_log_cat cat, const char *fmt, ...)
{
	va_list ap;
	const char *prefix = cat == MFS_LOG_IMAP  ? "imap: " :
			     cat == MFS_LOG_POP3  ? "pop3: " :
			     cat == MFS_LOG_FUSE  ? "fuse: " :
			     cat == MFS_LOG_CACHE ? "cache: " :
						    "";

	if (!mfs_log_enabled(cat))
		return;
	va_start(ap, fmt);
	if (to_syslog) {
		emit(LOG_DEBUG, prefix, fmt, ap);
	} else {
		/* A trace is read against others (the server's log, strace):
		   the time to the millisecond. syslog stamps its own. */
		gint64 now = g_get_real_time();
		g_autoptr(GDateTime) t = g_date_time_new_from_unix_local(now / G_USEC_PER_SEC);
		g_autofree char *hms = g_date_time_format(t, "%H:%M:%S");
		g_autofree char *stamped =
		    g_strdup_printf("%s%s.%03d ", prefix, hms, (int)(now % G_USEC_PER_SEC / 1000));

		emit(LOG_DEBUG, stamped, fmt, ap);
	}
	va_end(ap);
}

char *mfs_log_escape(const void *data, size_t len, size_t max_out)
{
	const unsigned char *p = data;
	size_t shown = len < max_out ? len : max_out;
	GString *s = g_string_sized_new(shown + 8);
	size_t i = 0;

	while (i < shown) {
		unsigned char ch = p[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			g_string_append_c(s, (char)ch);
			i++;
		} else if (ch >= 0x80) {
			/* Keep valid UTF-8 readable; escape every other byte. */
			size_t n = (size_t)g_utf8_skip[ch];

			if (n > 1 && n <= shown - i &&
			    g_utf8_validate((const char *)p + i, (gssize)n, NULL)) {
				g_string_append_len(s, (const char *)p + i, (gssize)n);
				i += n;
			} else {
				g_string_append_printf(s, "\\x%02x", ch);
				i++;
			}
		} else if (ch == '\\') {
			g_string_append(s, "\\\\");
			i++;
		} else if (ch == '\r') {
			g_string_append(s, "\\r");
			i++;
		} else if (ch == '\n') {
			g_string_append(s, "\\n");
			i++;
		} else {
			g_string_append_printf(s, "\\x%02x", ch);
			i++;
		}
	}
	if (shown < len)
		g_string_append(s, "...");
	return g_string_free(s, FALSE);
}
