# SPDX-License-Identifier: GPL-2.0-or-later
"""Open files keep their bytes (mailfs(1) CACHING AND FRESHNESS; issue 16):
a file opened before its message left the server (expunged by another
client, or its folder deleted, or deleted and made again under another
UIDVALIDITY, or removed with rm on the mount itself) reads every byte it fetched before for as long as it stays
open, gets ESTALE for a range it never fetched, and fstat keeps its size
(st_nlink 0); the name gives ENOENT.

The message is 1 MiB: opening it and reading 4 KiB fetches its first
128 KiB and its last bytes (account/body.c), so the middle is never
fetched. `refresh` (also the kernel's attribute timeout) is 1 s and the
tests wait past it, so the kernel asks the daemon again for the attributes
of the open file, as it does on every read once they expired. Nothing
asserts a time: the waits are conditions, with generous bounds."""

import errno
import os
import time

import pytest

from conftest import wait_for

USER = "erin"
FOLDER = "Kept"
REFRESH = 1
SIZE = 1 << 20
FAR = 512 * 1024  # never fetched: past the first range, before the last bytes
# dovecot drops a session whose selected mailbox another client deleted.
DROPPED = [r"warning: " + FOLDER + r": .*closed the connection"]


def big_message(tag):
    """A message of SIZE bytes whose every line says where it is."""
    head = (b"From: Zed <zed@example.org>\r\nTo: erin@example.org\r\n"
            b"Subject: Kept %s\r\nMessage-ID: <kept-%s@mailfs.test>\r\n\r\n" % (tag, tag))
    lines = []
    n = len(head)
    i = 0
    while n < SIZE:
        line = b"%s line %08d of a message kept open\r\n" % (tag, i)
        lines.append(line)
        n += len(line)
        i += 1
    return (head + b"".join(lines))[:SIZE - 2] + b"\r\n"


def fill_folder(server, tag):
    """FOLDER made anew with one big message; its bytes as the server serves them."""
    with server.imaps(USER) as c:
        c.delete(f'"{FOLDER}"')
        c.create(f'"{FOLDER}"')
        c.append(f'"{FOLDER}"', "()", None, big_message(tag))
        c.select(f'"{FOLDER}"', readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        return data[0][1]


def expunge_all(server):
    with server.imaps(USER) as c:
        c.select(f'"{FOLDER}"')
        c.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
        c.expunge()


def delete_folder(server):
    with server.imaps(USER) as c:
        c.delete(f'"{FOLDER}"')


def enoent(path):
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    return False


@pytest.fixture
def kept_folder(dovecot):
    """FOLDER is the test's: gone from erin's mailbox afterwards, whatever happened."""
    yield
    with dovecot.imaps(USER) as c:
        c.delete(f'"{FOLDER}"')


@pytest.mark.parametrize("change", ["expunged", "deleted", "recreated", "removed"])
def test_open_file_keeps_its_bytes(kept_folder, mount, dovecot, change):
    full = fill_folder(dovecot, b"old")
    assert len(full) == SIZE
    m = mount(user=USER, options={"refresh": REFRESH, "idle": "no", "prefetch": 0,
                                  "delete": "expunge"})
    folder = os.path.join(m.mountpoint, FOLDER)
    [name] = os.listdir(folder)
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == full[:4096]
        before = os.fstat(fd)
        assert before.st_size == SIZE and before.st_nlink == 1

        if change == "expunged":
            expunge_all(dovecot)
        elif change == "deleted":
            delete_folder(dovecot)
        elif change == "removed":
            os.unlink(path)
        else:
            new = fill_folder(dovecot, b"new")
        # The name goes once a lookup finds the listing older than `refresh`.
        wait_for(lambda: enoent(path), what=f"ENOENT for the name of the {change} message")
        with pytest.raises(FileNotFoundError):
            os.open(path, os.O_RDONLY)

        for _ in range(2):
            # Past the attribute timeout: the kernel asks the daemon again.
            time.sleep(REFRESH + 0.5)
            # Out of the page cache: the daemon serves the bytes again.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            assert os.pread(fd, 4096, 0) == full[:4096]
            after = os.fstat(fd)
            assert after.st_size == SIZE, after
            assert after.st_nlink == 0, after
            assert after.st_ino == before.st_ino and after.st_mtime == before.st_mtime
            with pytest.raises(OSError) as e:
                os.pread(fd, 4096, FAR)
            assert e.value.errno == errno.ESTALE, e.value

        if change == "recreated":
            # The new generation is another file, under a new inode number.
            [new_name] = wait_for(lambda: os.listdir(folder), what="the new message")
            assert new_name != name
            new_path = os.path.join(folder, new_name)
            assert os.stat(new_path).st_ino != before.st_ino
            with open(new_path, "rb") as f:
                assert f.read() == new
            assert os.pread(fd, 4096, 0) == full[:4096]
    finally:
        os.close(fd)
    m.unmount(allowed=DROPPED if change in ("deleted", "recreated") else ())
