# SPDX-License-Identifier: GPL-2.0-or-later
"""What a mailbox cannot hold is refused with EPERM, not ENOSYS, ESTALE or
ENOENT (mailfs(1) WRITING, EXTENDED ATTRIBUTES, POP3 VIEW): symlinks, FIFOs,
device nodes and hard links in the IMAP view; flags on a folder or the root;
every write into the POP3 spool. A flags value holding a control character
is EINVAL, never split into keywords. Each refusal is driven with the real
tool, its message checked in the tool's stderr, and the server checked
unchanged with a client of the test's own.

The IMAP tests use dave (seeded afresh by each test, as the write tests
do); the POP3 tests a dovecot of this module's own, as the spool tests do."""

import os
import socket
import subprocess

import pytest

import mailserver
from test_imap_write import (FOLDERS, USER, message_path, seed, server_bodies,
                             server_folders, server_uids)
from test_pop3_spool import Spool, inbox_messages, server_messages, spool_mount
from test_pop3_spool import seed as seed_spool

EPERM_TEXT = "Operation not permitted"
EINVAL_TEXT = "Invalid argument"


def run(*cmd, cwd=None):
    return subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd, timeout=60)


def refused(r, text=EPERM_TEXT):
    """The tool failed and said why: text in its stderr."""
    assert r.returncode != 0, f"{r.args} succeeded: {r.stdout}{r.stderr}"
    assert text in r.stderr, f"{r.args}: {r.stderr!r}"


def server_state(server):
    """Every folder of dave's, and every message: bytes, flags, INTERNALDATE."""
    folders = server_folders(server, USER)
    return folders, {f: server_bodies(server, f, USER) for f in sorted(folders)}


def mount_listing(mp):
    return {d: sorted(os.listdir(os.path.join(mp, d))) for d in [""] + FOLDERS}


@pytest.fixture
def imap(mount, dovecot):
    """dave's mount over a fresh seed, and the server's state before the test."""
    seed(dovecot)
    m = mount(user=USER)
    return m, server_state(dovecot)


# -- IMAP: what a mailbox cannot hold ---------------------------------------------------

def test_imap_symlink_fifo_device_link_are_eperm(imap, dovecot, workdir):
    m, before = imap
    mp = m.mountpoint
    listed = mount_listing(mp)
    msg = message_path(m, "INBOX", server_uids(dovecot, "INBOX")[0])
    target = os.path.join(workdir, "symlink-target.eml")
    with open(target, "wb") as f:
        f.write(b"Subject: t\r\n\r\nx\r\n")

    for where in ("", "INBOX", "Work/Old"):
        d = os.path.join(mp, where)
        refused(run("ln", "-s", target, os.path.join(d, "link.eml")))
        refused(run("ln", "-s", "INBOX", os.path.join(d, "dirlink")))
        refused(run("mkfifo", os.path.join(d, "fifo")))
        refused(run("mknod", os.path.join(d, "pipe"), "p"))
        # Root reaches the daemon; anyone else is refused by the kernel first.
        refused(run("mknod", os.path.join(d, "null"), "c", "1", "3"))
        sock = socket.socket(socket.AF_UNIX)
        try:
            with pytest.raises(PermissionError):
                sock.bind(os.path.join(d, "sock"))
        finally:
            sock.close()
    # A second name for a message: in its folder, in another, at the root.
    refused(run("ln", msg, os.path.join(mp, "INBOX", "again.eml")))
    refused(run("ln", msg, os.path.join(mp, "Work", "again.eml")))
    refused(run("ln", msg, os.path.join(mp, "again.eml")))
    # cp -l and cp -s ask for the same.
    refused(run("cp", "-l", msg, os.path.join(mp, "Work", "cpl.eml")))
    refused(run("cp", "-s", target, os.path.join(mp, "Work", "cps.eml")))

    assert mount_listing(mp) == listed
    assert server_state(dovecot) == before


def test_imap_readonly_refusals_are_erofs(mount, dovecot):
    seed(dovecot)
    m = mount(user=USER, options={"readonly": "yes"})
    before = server_state(dovecot)
    d = os.path.join(m.mountpoint, "INBOX")
    for r in (run("ln", "-s", "x", os.path.join(d, "link.eml")),
              run("mkfifo", os.path.join(d, "fifo")),
              run("ln", message_path(m, "INBOX", server_uids(dovecot, "INBOX")[0]),
                  os.path.join(d, "again.eml"))):
        refused(r, "Read-only file system")
    assert server_state(dovecot) == before


# -- IMAP: flags are a message's ---------------------------------------------------------

def test_flags_on_folder_and_root_are_eperm(imap, dovecot):
    m, before = imap
    mp = m.mountpoint
    for path in (mp, os.path.join(mp, "INBOX"), os.path.join(mp, "Work"),
                 os.path.join(mp, "Work", "Old")):
        refused(run("setfattr", "-n", "user.imap.flags", "-v", "\\Seen", path))
        refused(run("setfattr", "-n", "user.imap.flags", "-v", "", path))
        refused(run("setfattr", "-x", "user.imap.flags", path))
        refused(run("setfattr", "-n", "user.mail.subject", "-v", "x", path))
    assert server_state(dovecot) == before
    # A message's flags are still set as before.
    uid = server_uids(dovecot, "Work")[0]
    r = run("setfattr", "-n", "user.imap.flags", "-v", "\\Flagged $Work",
            message_path(m, "Work", uid))
    assert r.returncode == 0, r.stderr
    assert server_bodies(dovecot, "Work", USER)[uid][1] == ["$Work", "\\Flagged"]


@pytest.mark.parametrize("value", ["\\Seen\r\n$Junk", "\\Seen\n", "$Work\n\\Flagged",
                                   "\\Seen\r", "$Work\t\\Flagged", "\\Seen\x1b$Junk"],
                         ids=["crlf", "trailing-lf", "lf", "cr", "tab", "esc"])
def test_flags_with_control_characters_are_einval(imap, dovecot, value):
    m, before = imap
    msg = message_path(m, "INBOX", server_uids(dovecot, "INBOX")[1])
    shown = os.getxattr(msg, "user.imap.flags")
    refused(run("setfattr", "-n", "user.imap.flags", "-v", value, msg), EINVAL_TEXT)
    assert os.getxattr(msg, "user.imap.flags") == shown
    assert server_state(dovecot) == before
    # A new file refuses it too, before anything is sent.
    new = os.path.join(m.mountpoint, "INBOX", ".scratch.eml")
    with open(new, "wb") as f:
        f.write(b"Subject: new\r\nMessage-ID: <errno-flags@x>\r\n\r\nbody\r\n")
    refused(run("setfattr", "-n", "user.imap.flags", "-v", value, new), EINVAL_TEXT)
    os.unlink(new)
    assert server_state(dovecot) == before


# -- POP3: the spool only gives ------------------------------------------------------------

@pytest.fixture(scope="module")
def pop3_server(workdir):
    """A dovecot of this module's own, whose maildrop the spool tests reseed."""
    s = mailserver.Dovecot(os.path.join(workdir, "dovecot-errno"))
    s.start()
    yield s
    s.stop()


@pytest.fixture
def spool(workdir, request):
    s = Spool(workdir, "errno-" + request.node.name[:34])
    yield s
    # Never leave a mount behind, whatever happened.
    subprocess.run(["fusermount3", "-uz", s.mnt], capture_output=True)


def test_pop3_spool_writes_are_eperm(mailfs_bin, pop3_server, workdir, spool):
    seed_spool(pop3_server, inbox_messages()[:4])
    before = server_messages(pop3_server)
    local = os.path.join(workdir, "errno-local.eml")
    with open(local, "wb") as f:
        f.write(b"Subject: local\r\nMessage-ID: <errno-local@x>\r\n\r\nbody\r\n")
    m = spool_mount(mailfs_bin, pop3_server, workdir, spool)
    try:
        mp = m.mountpoint
        names = sorted(os.listdir(mp))
        assert len(names) == len(before)
        first, second = (os.path.join(mp, n) for n in names[:2])

        refused(run("mkdir", os.path.join(mp, "Folder")))
        refused(run("cp", local, mp))
        refused(run("cp", local, os.path.join(mp, "new.eml")))
        refused(run("cp", local, first))  # over a message
        refused(run("mv", first, os.path.join(mp, "renamed.eml")))
        refused(run("mv", first, second))
        refused(run("touch", os.path.join(mp, "touched.eml")))
        refused(run("touch", first))
        refused(run("truncate", "-s", "0", first))
        refused(run("sh", "-c", 'echo x >> "$1"', "sh", first))
        refused(run("ln", "-s", local, os.path.join(mp, "link.eml")))
        refused(run("ln", first, os.path.join(mp, "again.eml")))
        refused(run("mkfifo", os.path.join(mp, "fifo")))
        refused(run("mknod", os.path.join(mp, "null"), "c", "1", "3"))
        refused(run("setfattr", "-n", "user.imap.flags", "-v", "\\Seen", first))
        refused(run("setfattr", "-n", "user.x", "-v", "1", mp))
        refused(run("setfattr", "-x", "user.mailfs.status", mp))

        assert sorted(os.listdir(mp)) == names
        assert spool.archived() == {}
        m.unmount()
    finally:
        m.kill()
    # Nothing taken, nothing added: the server holds what it held.
    assert server_messages(pop3_server) == before
    assert spool.archived() == {}


def test_pop3_readonly_spool_writes_are_erofs(mailfs_bin, pop3_server, workdir, spool):
    seed_spool(pop3_server, inbox_messages()[:2])
    before = server_messages(pop3_server)
    m = spool_mount(mailfs_bin, pop3_server, workdir, spool, readonly="yes")
    try:
        mp = m.mountpoint
        first = os.path.join(mp, sorted(os.listdir(mp))[0])
        refused(run("mkdir", os.path.join(mp, "Folder")), "Read-only file system")
        refused(run("cp", "/etc/hostname", os.path.join(mp, "new.eml")),
                "Read-only file system")
        refused(run("mv", first, os.path.join(mp, "renamed.eml")), "Read-only file system")
        m.unmount()
    finally:
        m.kill()
    assert server_messages(pop3_server) == before
