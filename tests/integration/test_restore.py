# SPDX-License-Identifier: GPL-2.0-or-later
"""Backup and restore through the mount (mailfs(1), WRITING and EXTENDED
ATTRIBUTES): `rsync -aX MOUNT/ backup/` of a whole account, then
`rsync -aX backup/ MOUNT2/` into another, empty account, exit 0; the
restored account holds every message once, byte for byte, with its flags
and INTERNALDATE, also those that do not look like RFC 5322; a second
restore appends nothing; a second backup transfers nothing, the root
included.

A dovecot of this module's own: alice holds the corpus plus messages of its
own (no header on the first line, no Message-ID, two identical messages of
different arrival), bob is emptied and restored into. The server is checked
with an imaplib client of the test's own, never through the mount."""

import datetime
import imaplib
import os
import re
import subprocess

import pytest

import corpus
import mailserver
from conftest import password_file

SOURCE, TARGET = "alice", "bob"

# The test's own odd messages: (folder, bytes, INTERNALDATE, flags).
_WHEN = datetime.datetime(2025, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
ODD = [
    ("Odd", b"This first line is no header at all\r\nnor is this one\r\n\r\nbody\r\n",
     _WHEN, ("\\Seen",)),
    ("Odd", b"\r\nA message that starts with an empty line\r\n", _WHEN, ()),
    ("Odd", b"Subject: no Message-ID here\r\n\r\nsame bytes, other arrival\r\n",
     _WHEN, ("\\Flagged", "$Restore")),
    ("Odd", b"Subject: no Message-ID here\r\n\r\nsame bytes, other arrival\r\n",
     _WHEN + datetime.timedelta(days=1), ()),
]


@pytest.fixture(scope="module")
def server(workdir):
    s = mailserver.Dovecot(os.path.join(workdir, "dovecot-restore"))
    s.start()
    try:
        with s.imaps(SOURCE) as c:
            corpus.seed(c)
            corpus.seed(c, ODD, folders=["Odd"])
        yield s
    finally:
        s.stop()


def imap_mount(mount, server, workdir, user):
    return mount(user=user, source=server.url(user),
                 options={"ca_file": server.ca,
                          "password_file": password_file(workdir, server, user)})


def internaldate(raw):
    """Seconds since the epoch of an INTERNALDATE string."""
    return int(datetime.datetime.strptime(raw.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())


def account(server, user):
    """{folder wire name: sorted [(bytes, flags, INTERNALDATE)]} of every selectable folder."""
    out = {}
    with server.imaps(user) as c:
        typ, lines = c.list()
        assert typ == "OK"
        for line in lines:
            m = re.match(rb'\((?P<attrs>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.*)$', line)
            assert m, line
            if b"\\noselect" in m["attrs"].lower():
                continue
            name = m["name"].decode()
            typ, _ = c.select(name, readonly=True)
            assert typ == "OK", name
            typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            assert typ == "OK"
            msgs = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                meta = item[0].decode()
                flags = re.search(r"FLAGS \(([^)]*)\)", meta)[1].split()
                date = re.search(r'INTERNALDATE "([^"]+)"', meta)[1]
                msgs.append((item[1], tuple(sorted(f for f in flags if f != "\\Recent")),
                             internaldate(date)))
            out[name.strip('"')] = sorted(msgs)
    return out


def count(acct):
    return sum(len(v) for v in acct.values())


def rsync(*args):
    r = subprocess.run(["rsync", "-aX", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"rsync {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
    return r


def assert_nothing_transferred(r):
    changes = [l for l in r.stdout.splitlines() if re.match(r"^[<>ch.*][fdLDS]", l)]
    assert changes == [], "a backup of an unchanged account changed:\n" + "\n".join(changes)
    assert re.search(r"Number of regular files transferred: 0\b", r.stdout), r.stdout


def test_backup_and_restore_round_trip(mount, server, workdir, tmp_path):
    source = account(server, SOURCE)
    odd = [m for m in source["Odd"]]
    assert len(odd) == 4 and len({m[0] for m in odd}) == 3
    pyemail = source["PyEmail"]
    # The corpus itself holds messages whose first line is no header.
    assert any(not re.match(rb"^[!-9;-~]+:", b) for b, _, _ in pyemail)
    server.reset_user(TARGET)
    backup = str(tmp_path / "backup") + "/"
    m1 = imap_mount(mount, server, workdir, SOURCE)
    rsync(m1.mountpoint + "/", backup)
    names = [n for _, _, files in os.walk(backup) for n in files]
    assert len(names) == count(source)
    # The status is read by name, never copied.
    assert b"state: up" in os.getxattr(m1.mountpoint, "user.mailfs.status")
    assert "user.mailfs.status" not in os.listxattr(m1.mountpoint)
    assert "user.mailfs.status" not in os.listxattr(backup)
    # Folder mtimes are their newest message's INTERNALDATE.
    st = os.stat(os.path.join(backup, "Odd"))
    assert int(st.st_mtime) == max(d for _, _, d in source["Odd"])

    m2 = imap_mount(mount, server, workdir, TARGET)
    rsync(backup, m2.mountpoint + "/")
    restored = account(server, TARGET)
    for folder, msgs in source.items():
        assert restored.get(folder) == msgs, f"{folder} differs after the restore"
    assert count(restored) == count(source)

    # Again: exit 0, nothing appended (the server's UIDNEXT tells).
    with server.imaps(TARGET) as c:
        before = {f: c.status(f'"{f}"', "(UIDNEXT MESSAGES)")[1][0] for f in restored}
    rsync(backup, m2.mountpoint + "/")
    with server.imaps(TARGET) as c:
        after = {f: c.status(f'"{f}"', "(UIDNEXT MESSAGES)")[1][0] for f in restored}
    assert after == before
    assert account(server, TARGET) == restored

    # A second backup, on the same mount and on a new one, transfers nothing.
    assert_nothing_transferred(rsync("-i", "--stats", m1.mountpoint + "/", backup))
    m1.unmount()
    m3 = imap_mount(mount, server, workdir, SOURCE)
    assert_nothing_transferred(rsync("-i", "--stats", m3.mountpoint + "/", backup))
    # Setting the status (a backup made by an older mailfs, restored) changes nothing.
    os.setxattr(m3.mountpoint, "user.mailfs.status", b"state: old\n")
    assert b"state: up" in os.getxattr(m3.mountpoint, "user.mailfs.status")


def test_pop3_status_is_read_by_name(mount, server, workdir, tmp_path):
    """The POP3 view's root follows the same rule: not listed, so rsync -aX
    of the spool copies no status; setting it succeeds and changes nothing."""
    user = "carol"
    server.reset_user(user)
    m = mount(user=user, source=server.url(user, "pop3s"),
              options={"ca_file": server.ca,
                       "password_file": password_file(workdir, server, user),
                       "pop3_archive": str(tmp_path / "archive")})
    assert b"state:" in os.getxattr(m.mountpoint, "user.mailfs.status")
    assert "user.mailfs.status" not in os.listxattr(m.mountpoint)
    os.setxattr(m.mountpoint, "user.mailfs.status", b"state: old\n")
    assert b"state: old" not in os.getxattr(m.mountpoint, "user.mailfs.status")
    backup = str(tmp_path / "backup") + "/"
    rsync(m.mountpoint + "/", backup)
    assert "user.mailfs.status" not in os.listxattr(backup)
