# SPDX-License-Identifier: GPL-2.0-or-later
"""The command line itself: versions, help."""

import subprocess


def run(mailfs_bin, *args):
    return subprocess.run([mailfs_bin, *args], capture_output=True, text=True, timeout=30)


def test_version_names_every_library(mailfs_bin):
    r = run(mailfs_bin, "--version")
    assert r.returncode == 0
    for word in ("mailfs", "libfuse", "OpenSSL", "GLib"):
        assert word in r.stdout
    assert run(mailfs_bin, "-V").stdout == r.stdout


def test_short_help_fits_a_terminal(mailfs_bin):
    r = run(mailfs_bin, "-h")
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) <= 24
    assert "man mailfs" in r.stdout and "--help" in r.stdout


def test_long_help_has_libfuse_options(mailfs_bin):
    r = run(mailfs_bin, "--help")
    assert r.returncode == 0
    assert "allow_other" in r.stdout and "usage: mailfs" in r.stdout


def test_no_arguments_is_one_clear_error(mailfs_bin):
    r = run(mailfs_bin)
    assert r.returncode != 0
    assert r.stderr.startswith("mailfs: ")
