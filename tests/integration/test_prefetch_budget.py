# SPDX-License-Identifier: GPL-2.0-or-later
"""Prefetch within a budget it can keep (issue 16): a cold grep -r fetches
each message about once, also when the body cache (cache_size) holds only a
quarter of the mailbox. Counted in bytes from user.mailfs.status, never timed:

  bytes fetched = bytes_fetched (the readers' ranges) + prefetched_bytes
                  (every body byte the prefetchers received, kept or not)

against the mailbox's bytes (the sum of RFC822.SIZE): at most 1.1x with a
quarter-size cache, 1.02x with the default one; bytes_fetched_ahead_unused
(fetched ahead, then evicted or dropped unread) is reported."""

import base64
import os
import random
import re
import subprocess

import pytest

import corpus
import mailserver

NEEDLE = "budget-needle-7c1e"
FOLDERS = ["INBOX", "Archive", "Archive/2025", "Lists", "Lists/dev", "Reports"]
MIB = 1024 * 1024


def _text(rng, size):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    lines, n = [], 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(10))
        lines.append(line)
        n += len(line) + 2
    return "\r\n".join(lines) + "\r\n"


def _message(i, rng, size, needle):
    head = (f"From: Sender {i % 13} <s{i % 13}@example.org>\r\n"
            f"To: Alice <alice@example.org>\r\nSubject: Budget message {i}\r\n"
            f"Date: Mon, 1 Jun 2026 08:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <budget-{i}@example.org>\r\n")
    if size < 50_000:
        body = _text(rng, size)
    else:
        # A large message: an attachment, as in real mailboxes.
        raw = rng.randbytes(size * 3 // 4)
        b64 = "\r\n".join(
            base64.b64encode(raw[k:k + 57]).decode()
            for k in range(0, len(raw), 57))
        head += f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b{i}"\r\n'
        body = (f"--b{i}\r\nContent-Type: text/plain\r\n\r\n{_text(rng, 800)}"
                f"--b{i}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b{i}--\r\n")
    if needle:
        body += NEEDLE + "\r\n"
    return (head + "\r\n" + body).encode()


def build():
    """About 18 MB in 170 messages over six folders: most 2-20 KB, one in
    ten 100 KB-1 MB, three of 1.5-2.5 MB (below the prefetcher's 8 MiB)."""
    rng = random.Random(16)
    msgs = []
    for i in range(170):
        folder = "INBOX" if i % 3 else FOLDERS[1 + (i // 3) % (len(FOLDERS) - 1)]
        if i in (40, 95, 150):
            size = rng.randint(1_500_000, 2_500_000)
        elif i % 10 == 7:
            size = rng.randint(100_000, 1_000_000)
        else:
            size = rng.randint(2_000, 20_000)
        msgs.append((folder, _message(i, rng, size, i % 11 == 0), (i % 11 == 0)))
    return msgs


@pytest.fixture(scope="module")
def budget_server(workdir):
    """A dovecot of this module's own, holding the corpus above for alice."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-budget"))
    server.start()
    try:
        msgs = build()
        with server.imaps("alice") as c:
            corpus.seed(c, [(f, data, corpus._date(n), ()) for n, (f, data, _) in
                            enumerate(msgs)], folders=FOLDERS)
        total = 0
        with server.imaps("alice") as c:
            for f in FOLDERS:
                c.select(corpus._q(f), readonly=True)
                typ, data = c.uid("FETCH", "1:*", "(RFC822.SIZE)")
                total += sum(int(m) for m in re.findall(rb"RFC822.SIZE (\d+)", b" ".join(
                    d if isinstance(d, bytes) else d[0] for d in data if d)))
        server.mailbox_bytes = total
        server.with_needle = sum(1 for m in msgs if m[2])
        yield server
    finally:
        server.stop()


def status(mnt):
    out = subprocess.run(["getfattr", "--only-values", "-n", "user.mailfs.status", mnt],
                         capture_output=True, text=True, check=True).stdout
    return {k: v for k, v in (l.split(": ", 1) for l in out.splitlines() if ": " in l)}


def cold_grep(mount_budget, server, options):
    """grep -r of the whole mount, fresh mount and empty cache: the status
    then, and bytes fetched / the mailbox's bytes."""
    m = mount_budget(server.url("alice"), dict({"ca_file": server.ca, "idle": "no"}, **options))
    r = subprocess.run(["grep", "-r", "-l", NEEDLE, m.mountpoint],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # Every message holding the needle was found: the bytes read were right.
    assert len(r.stdout.splitlines()) == server.with_needle
    st = status(m.mountpoint)
    fetched = int(st["bytes_fetched"]) + int(st["prefetched_bytes"])
    return st, fetched / server.mailbox_bytes


@pytest.fixture
def mount_budget(mount, budget_server, workdir):
    def make(source, options):
        # The module's own server: its CA, and alice's password there.
        pw = os.path.join(workdir, "budget-alice.password")
        if not os.path.exists(pw):
            fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(budget_server.users["alice"] + "\n")
        return mount(source=source, options=dict(options, password_file=pw))
    return make


def test_grep_with_a_quarter_size_cache_fetches_each_message_about_once(mount_budget,
                                                                        budget_server):
    assert budget_server.mailbox_bytes > 8 * MIB
    quarter = budget_server.mailbox_bytes // 4 // MIB
    st, ratio = cold_grep(mount_budget, budget_server, {"cache_size": f"{quarter}M"})
    print(f"mailbox {budget_server.mailbox_bytes} bytes, cache {quarter} MiB: "
          f"fetched/mailbox {ratio:.3f}", st)
    assert ratio <= 1.1, st
    assert "bytes_fetched_ahead_unused" in st


def test_grep_with_the_default_cache_fetches_each_message_once(mount_budget, budget_server):
    st, ratio = cold_grep(mount_budget, budget_server, {})
    print(f"mailbox {budget_server.mailbox_bytes} bytes, default cache: "
          f"fetched/mailbox {ratio:.3f}", st)
    assert ratio <= 1.02, st
    assert "bytes_fetched_ahead_unused" in st
    # Nothing fetched ahead went unread: the cache keeps it all.
    assert int(st["bytes_fetched_ahead_unused"]) == 0, st
