# SPDX-License-Identifier: GPL-2.0-or-later
"""The protocol trace (-o log=imap, log=pop3) can be followed with several
connections at once: every line carries the time and the connection's name
(imap#N, pop3#N), each connection says where it went, and every tagged
answer can be matched with the command sent on the same connection."""

import os
import re
import subprocess
import threading

STAMPED = re.compile(r"^mailfs: (imap|pop3): \d\d:\d\d:\d\d\.\d{3} (.*)$")
NAMED = re.compile(r"^((?:imap|pop3)#\d+) (C: .*|S: .*|connected to .*)$")


def parse_trace(stderr, proto):
    """(connection, text) of each protocol line; every line of the
    category carries the time, every command and answer a connection."""
    out = []
    for l in stderr.splitlines():
        if not l.startswith(f"mailfs: {proto}: "):
            continue
        m = STAMPED.match(l)
        assert m, f"a debug line without the time: {l!r}"
        n = NAMED.match(m.group(2))
        if n:
            out.append((n.group(1), n.group(2)))
        else:
            assert not re.match(r"(\S+ )?[CS]: ", m.group(2)), \
                f"a protocol line without its connection's name: {l!r}"
    return out


def test_imap_trace_names_each_connection(mount):
    m = mount(options={"log": "imap", "connections": 3})
    files = []
    for folder in ("INBOX", "Archive", "Sent"):
        d = os.path.join(m.mountpoint, folder)
        files += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".eml")][:4]

    def read(path):
        with open(path, "rb") as f:
            f.read()
    threads = [threading.Thread(target=read, args=(p,)) for p in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    subprocess.run(["ls", "-R", m.mountpoint], capture_output=True, check=True)
    trace = parse_trace(m.stderr(), "imap")
    m.unmount()

    names = {n for n, _ in trace}
    assert len(names) >= 2, names  # several connections took part
    connected = set()
    sent = {}
    for name, text in trace:
        if text.startswith("connected to "):
            connected.add(name)
            continue
        assert name in connected, f"{name} traced before it said where it connected"
        if text.startswith("C: "):
            tag = text[3:].split(" ", 1)[0]
            sent.setdefault(name, set()).add(tag)
        elif text.startswith("S: "):
            word = text[3:].split(" ", 2)
            if len(word) > 1 and word[0] not in ("*", "+") and word[1] in ("OK", "NO", "BAD"):
                assert word[0] in sent.get(name, set()), \
                    f"{name} answered tag {word[0]} that was not sent on it"
