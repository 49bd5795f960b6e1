# SPDX-License-Identifier: GPL-2.0-or-later
"""The prefetcher follows a walk's order across folders. When a tree walk
in one folder has the first messages of the next folders fetched ahead, a
folder with more messages than one request takes (AHEAD_MAX, 256) ends that
request: the walk reads the rest of it before the folders after it, and its
reader's opens ask for that rest. Fetching a later folder's first messages
before it would bring the prefetcher's connection back to the big folder
with a second EXAMINE, and the link would idle for that round trip.

Checked in the protocol trace (log=imap): which mailbox was selected at
each body fetch."""

import os
import re
import subprocess
import time

import pytest

import corpus
import mailserver
from conftest import status_counts

# The walk's order (rsync's, and mailfs's): A-first, A-second, B-big,
# C-small, D-1 to D-7, INBOX. Two folders before the big one: the second is
# read right after the first, so the walk is known as a tree walk there.
D = [f"D-{i}" for i in range(1, 8)]
FOLDERS = ["INBOX", "A-first", "A-second", "B-big", "C-small"] + D
SIZES = dict({"A-first": 5, "A-second": 5, "B-big": 300, "C-small": 5}, **{d: 3 for d in D})


def _message(folder, i):
    return (f"From: Walker <walk@example.org>\r\nTo: Alice <alice@example.org>\r\n"
            f"Subject: {folder} {i}\r\nMessage-ID: <order-{folder}-{i}@example.org>\r\n"
            f"Date: Mon, 1 Jun 2026 08:00:00 +0000\r\n\r\n"
            + f"{folder} message {i}: lorem ipsum dolor sit amet\r\n" * 20).encode()


@pytest.fixture(scope="module")
def order_server(workdir):
    """A dovecot of this module's own: a folder of 300 messages after two
    of 5 and before one, then seven of 3."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-order"))
    server.start()
    try:
        msgs = [(f, _message(f, i), corpus._date(i), ())
                for f, n in SIZES.items() for i in range(n)]
        with server.imaps("alice") as c:
            corpus.seed(c, msgs, folders=FOLDERS)
        yield server
    finally:
        server.stop()


def settle(mnt, name, timeout=30):
    """Wait until counter name has not moved for a second."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = status_counts(mnt)[name]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return now
        time.sleep(0.1)
    raise AssertionError(f"{name} still moving after {timeout}s")


def body_selects(trace):
    """Per connection, the mailboxes bodies were fetched from, in the order
    the connection went to them (the one selected at each BODY.PEEK[]
    fetch; a run of fetches in one mailbox counts once)."""
    selected, seq = {}, {}
    for line in trace.splitlines():
        m = re.search(r"(imap#\d+) C: \S+ (.*)", line)
        if not m:
            continue
        conn, cmd = m.groups()
        e = re.match(r'(?:EXAMINE|SELECT) "?([^" ]*)', cmd)
        if e:
            selected[conn] = e.group(1)
        elif "BODY.PEEK[]" in cmd and conn in selected:
            s = seq.setdefault(conn, [])
            if not s or s[-1] != selected[conn]:
                s.append(selected[conn])
    return seq


def options(server, workdir, **more):
    pw = os.path.join(workdir, "order-alice.password")
    if not os.path.exists(pw):
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(server.users["alice"] + "\n")
    return dict({"ca_file": server.ca, "password_file": pw, "idle": "no"}, **more)


def read_folder(mp, folder, pause_before_last=0.0):
    names = sorted(os.listdir(os.path.join(mp, folder)))
    for i, name in enumerate(names):
        if i == len(names) - 1 and pause_before_last:
            time.sleep(pause_before_last)
        with open(os.path.join(mp, folder, name), "rb") as f:
            assert f"{folder} message".encode() in f.read()


def test_a_walk_fetches_a_big_folder_before_the_folders_after_it(mount, order_server,
                                                                  workdir, tmp_path):
    m = mount(source=order_server.url("alice"),
              options=options(order_server, workdir, log="imap"))
    mp = m.mountpoint
    # A walk as rsync makes it, up to the folder before the big one: the
    # two folders read one after the other (the folders after them are
    # then listed in one burst), every file of both read.
    os.listdir(mp)
    read_folder(mp, "A-first")
    read_folder(mp, "A-second")
    # What the walk had fetched ahead from there.
    settle(mp, "prefetched_messages")
    ahead = [f for fs in body_selects(m.stderr()).values() for f in fs]
    assert "B-big" in ahead, ahead
    assert "C-small" not in ahead, ahead
    # The walk goes on: every message arrives, each fetched once.
    copy = tmp_path / "copy"
    subprocess.run(["rsync", "-a", mp + "/", str(copy) + "/"], check=True, timeout=120)
    for folder, n in SIZES.items():
        names = sorted(os.listdir(copy / folder))
        assert len(names) == n, folder
        for name in names:
            assert f"{folder} message".encode() in (copy / folder / name).read_bytes()
    st = status_counts(mp)
    assert st["bytes_fetched_ahead_unused"] == 0
    m.unmount()


def test_a_walk_passes_over_folders_cached_already(mount, order_server, workdir):
    """The next folders fetched ahead are the next ones with something to
    fetch: those whose messages are cached already are passed over, so the
    folders after them come ahead too (else, at the end of a walk whose
    next folders were all fetched ahead, each later folder would begin with
    a round trip)."""
    # D-3 to D-6 read with nothing fetched ahead: in the cache.
    m = mount(source=order_server.url("alice"), options=options(order_server, workdir,
                                                                prefetch=0))
    for folder in D[2:6]:
        read_folder(m.mountpoint, folder)
    m.unmount()
    # On the same cache: a walk reads D-1, then D-2. The last open of D-2
    # comes after its next folders were listed (the walk's listing burst).
    m = mount(source=order_server.url("alice"), options=options(order_server, workdir,
                                                                log="imap"))
    mp = m.mountpoint
    os.listdir(mp)
    read_folder(mp, "D-1")
    read_folder(mp, "D-2", pause_before_last=1.5)
    settle(mp, "prefetched_messages")
    ahead = {f for fs in body_selects(m.stderr()).values() for f in fs}
    assert "D-7" in ahead, ahead
    assert not ahead & set(D[2:6]), ahead
    read_folder(mp, "D-7")
    m.unmount()
