# SPDX-License-Identifier: GPL-2.0-or-later
"""The kernel keeps the pages of a message once read (keep_cache: a second
grep -r is served by the page cache, doc/architecture.md, the read path).
Those pages must never stand for other bytes. A message's inode number
names one message for the life of the mount (model/tree.h, INODE NUMBERS),
so the folder made again with other messages under the same UIDs and the
same names (a new UIDVALIDITY), or an expunge, never leaves a name whose
reads give the old pages. The messages here are of the same size old and
new, so no size check could notice either. No push, refresh 1 s: the tests
wait for the listing to change; nothing asserts a time."""

import os
import time

import pytest

from conftest import wait_for

USER = "erin"
FOLDER = "Paged"
# A few pages each; old and new of exactly the same size.
BODY_LINES = 400


def message(i, tag):
    head = (b"From: Zed <zed@example.org>\r\nTo: erin@example.org\r\n"
            b"Subject: Paged %d\r\nMessage-ID: <paged-%d@mailfs.test>\r\n\r\n" % (i, i))
    return head + b"".join(b"%s line %05d of message %d\r\n" % (tag, n, i)
                           for n in range(BODY_LINES))


def uidvalidity(c):
    typ, data = c.select(f'"{FOLDER}"', readonly=True)
    assert typ == "OK"
    return int(c.response("UIDVALIDITY")[1][0])


def fill(server, tag, n, old_uidvalidity=None):
    """FOLDER made anew with n messages (UIDs 1..n, subjects by number):
    the messages, and its UIDVALIDITY."""
    msgs = [message(i, tag) for i in range(n)]
    with server.imaps(USER) as c:
        while True:
            c.delete(f'"{FOLDER}"')
            c.create(f'"{FOLDER}"')
            uv = uidvalidity(c)
            if uv != old_uidvalidity:
                break
            time.sleep(0.5)  # dovecot's UIDVALIDITY is a time
        for m in msgs:
            c.append(f'"{FOLDER}"', "()", None, m)
    return msgs, uv


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def paged(dovecot):
    """FOLDER is the test's: gone from erin's mailbox afterwards."""
    yield
    with dovecot.imaps(USER) as c:
        c.delete(f'"{FOLDER}"')


def test_recreated_folder_same_names_new_bytes(paged, mount, dovecot):
    old, uv = fill(dovecot, b"old", 2)
    m = mount(user=USER, options={"refresh": 1, "idle": "no", "prefetch": 0})
    folder = os.path.join(m.mountpoint, FOLDER)
    names = sorted(os.listdir(folder))
    assert len(names) == 2
    inos = {}
    for n, want in zip(names, old):
        path = os.path.join(folder, n)
        assert read(path) == want
        assert read(path) == want  # the second from the page cache
        inos[n] = os.stat(path).st_ino

    new, _ = fill(dovecot, b"new", 2, old_uidvalidity=uv)
    assert [len(x) for x in new] == [len(x) for x in old]

    def relisted():
        try:
            return all(os.stat(os.path.join(folder, n)).st_ino != inos[n] for n in names)
        except FileNotFoundError:
            return False
    wait_for(relisted, what="the new generation under the same names")
    assert sorted(os.listdir(folder)) == names
    for n, want in zip(names, new):
        assert read(os.path.join(folder, n)) == want
    # dovecot drops a session whose selected mailbox was deleted.
    m.unmount(allowed=[r"warning: " + FOLDER + r": .*closed the connection"])


def test_expunged_message_is_not_served_from_pages(paged, mount, dovecot):
    [old], _ = fill(dovecot, b"old", 1)
    m = mount(user=USER, options={"refresh": 1, "idle": "no", "prefetch": 0})
    folder = os.path.join(m.mountpoint, FOLDER)
    [name] = os.listdir(folder)
    path = os.path.join(folder, name)
    assert read(path) == old
    assert read(path) == old
    new = message(0, b"new")  # the same subject and size, a new UID
    with dovecot.imaps(USER) as c:
        c.select(f'"{FOLDER}"')
        c.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
        c.expunge()
        c.append(f'"{FOLDER}"', "()", None, new)

    def gone():
        try:
            data = read(path)
        except FileNotFoundError:
            return True
        assert data == old  # until the listing shows the expunge
        return False
    wait_for(gone, what="ENOENT for the expunged message's name")
    [new_name] = os.listdir(folder)
    assert new_name != name
    assert read(os.path.join(folder, new_name)) == new
    m.unmount(allowed=[r"warning: " + FOLDER + r": .*closed the connection"])
