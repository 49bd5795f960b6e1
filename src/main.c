/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mailfs: mount a remote mailbox (IMAP or POP3) as a directory tree.
 *
 * Startup order matters (style.md): parse options, load the config, get
 * credentials, connect and log in in the foreground, then mount and
 * daemonize, so that every failure reaches the terminal as one line.
 */
#include "config.h"

#include <fuse_lowlevel.h>
#include <glib.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_version(void)
{
	printf("mailfs %s\n", MAILFS_VERSION);
	printf("libfuse %s (FUSE API %d.%d)\n", fuse_pkgversion(), FUSE_MAJOR_VERSION,
	       FUSE_MINOR_VERSION);
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("GLib %u.%u.%u\n", glib_major_version, glib_minor_version, glib_micro_version);
}

static void print_usage(FILE *out)
{
	fprintf(out,
		"usage: mailfs [options] SOURCE MOUNTPOINT\n"
		"  SOURCE   imaps://USER@HOST[:PORT]  imap://USER@HOST[:PORT] (STARTTLS)\n"
		"           pop3s://USER@HOST[:PORT]  pop3://USER@HOST[:PORT] (STLS)\n"
		"           NAME (an [account NAME] section of the config file)\n"
		"\n"
		"  -f            stay in the foreground\n"
		"  -d            libfuse debug and protocol trace (implies -f; secrets redacted)\n"
		"  -s            single-threaded\n"
		"  -o OPT[,OPT]  mailfs or libfuse options (KEY=VALUE; see mailfs(1))\n"
		"  -F FILE       config file [$XDG_CONFIG_HOME/mailfs/mailfs.conf]\n"
		"  -V, --version print versions and exit\n"
		"  -h, --help    print this help and exit\n"
		"\n"
		"Unmount with: fusermount3 -u MOUNTPOINT.  Options and files: man mailfs\n");
}

static void print_help(void)
{
	print_usage(stdout);
	printf("\nlibfuse options:\n");
	fflush(stdout);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			print_version();
			return EXIT_SUCCESS;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_help();
			return EXIT_SUCCESS;
		}
	}
	fprintf(stderr, "mailfs: mounting is not built yet in this version\n");
	print_usage(stderr);
	return EXIT_FAILURE;
}
