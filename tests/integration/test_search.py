# SPDX-License-Identifier: GPL-2.0-or-later
"""The .search directories (mailfs(1), SEARCH): a query is a directory name
under MOUNT/.search/ (or FOLDER/.search/), its results mirror the folders
with matches, and each entry is the message file itself.

Every expected answer comes from the test's own imaplib client: a UID SEARCH
with keys written by hand, per folder, on a private dovecot of this module
seeded with a small corpus. The mount is read with the tools users run
(os.walk/listdir, ls, cat, stat, getfattr, find, rsync)."""

import datetime
import email.utils
import imaplib
import os
import re
import subprocess
import time

import pytest

import corpus
import mailserver
from conftest import password_file

USER = "alice"        # on this module's own server, seeded below
LIVE_USER = "erin"    # the same server, changed by the live tests only
POP3_USER = "bob"
FOLDERS = ["INBOX", "Archive", "Archive/2024", "Work"]

JUERGEN = "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>"   # Jürgen Müller
GRUESSE = "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?="          # Grüße aus München
ALICE = "Alice Example <alice@example.org>"
BOB = "Bob <bob@example.org>"


def when(y, mo, d):
    return datetime.datetime(y, mo, d, 12, 0, 0, tzinfo=datetime.timezone.utc)


def filler(kib):
    """About kib KiB of text holding none of the words the queries look for."""
    line = "filler line {:05d} lorem ipsum dolor sit amet consectetur\r\n"
    return "".join(line.format(i) for i in range(kib * 1024 // len(line.format(0)) + 1))


def message(n, date, frm, subject, body, to="alice@example.org", cc=None, bcc=None):
    head = [f"From: {frm}", f"To: {to}"]
    head += [f"Cc: {cc}"] if cc else []
    head += [f"Bcc: {bcc}"] if bcc else []
    head += [f"Subject: {subject}", f"Date: {email.utils.format_datetime(date)}",
             f"Message-ID: <search-{n}@mailfs.test>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=us-ascii"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


# (folder, bytes, INTERNALDATE, flags): UIDs are 1, 2, ... per folder, in this order.
MESSAGES = [
    ("INBOX", message(1, when(2024, 1, 5), ALICE, "Budget meeting",
                      "Let us go through the quarterly numbers on Monday.\r\n",
                      to=BOB, cc="Carol <carol@example.org>"), when(2024, 1, 5), ("\\Seen",)),
    ("INBOX", message(2, when(2023, 12, 20), BOB, "Lunch plans",
                      "Pizza or sushi? Two of us, maybe three; words fail me.\r\n"),
     when(2023, 12, 20), ("\\Flagged",)),
    ("INBOX", message(3, when(2024, 3, 15), JUERGEN, GRUESSE, filler(20),
                      bcc="Dave <dave@example.org>"),
     when(2024, 3, 15), ("\\Seen", "\\Answered", "$Work")),
    ("INBOX", message(4, when(2024, 3, 1), "Carol <carol@example.org>", "Two words subject",
                      "Not sent yet.\r\n"), when(2024, 3, 1), ("\\Draft",)),
    ("Archive", message(5, when(2022, 6, 1), ALICE, "Quarterly report", filler(12),
                        to="Erin <erin@example.org>"),
     when(2022, 6, 1), ("\\Seen", "\\Flagged", "$Work")),
    ("Archive", message(6, when(2024, 1, 10), BOB, "Re: Budget meeting",
                        "Monday works. Pizza after?\r\n", cc="Frank <frank@example.net>"),
     when(2024, 1, 10), ("\\Seen", "\\Answered")),
    ("Archive", message(7, when(2021, 2, 3), "Dave <dave@example.org>", "Old stuff",
                        "Clearing out.\r\n"), when(2021, 2, 3), ("\\Seen", "\\Deleted")),
    ("Archive/2024", message(8, when(2024, 2, 29), ALICE, "Budget 2024 final",
                             "Final figures attached.\r\n", to=BOB, cc=BOB),
     when(2024, 2, 29), ("\\Seen",)),
    ("Archive/2024", message(9, when(2024, 3, 15), "Frank <frank@example.net>", "Invoice 42",
                             filler(11)), when(2024, 3, 15), ("$Work",)),
    ("Work", message(10, when(2024, 4, 1), "Grace <grace@example.com>", "Standup notes",
                     "We said these two words here: ship it.\r\n"), when(2024, 4, 1),
     ("\\Seen",)),
]

# Every term of the grammar: (query, UID SEARCH keys written by hand,
# a non-ASCII last argument sent as a literal or None, folder: scope or None).
TERMS = [
    ("budget", 'TEXT "budget"', None, None),
    ("text:pizza", 'TEXT "pizza"', None, None),
    ("text:quarterly", 'TEXT "quarterly"', None, None),
    ("body:quarterly", 'BODY "quarterly"', None, None),
    ("from:alice", 'FROM "alice"', None, None),
    ("to:erin", 'TO "erin"', None, None),
    ("cc:bob", 'CC "bob"', None, None),
    ("bcc:dave", 'BCC "dave"', None, None),
    ("subject:budget", 'SUBJECT "budget"', None, None),
    ('subject:"two words"', 'SUBJECT "two words"', None, None),
    ('"two words"', 'TEXT "two words"', None, None),
    ("two words", 'TEXT "two" TEXT "words"', None, None),
    ("since:2024-03-01", "SINCE 1-Mar-2024", None, None),
    ("before:2024-01-01", "BEFORE 1-Jan-2024", None, None),
    ("on:2024-03-15", "ON 15-Mar-2024", None, None),
    ("larger:10K", "LARGER 10240", None, None),
    ("smaller:10K", "SMALLER 10240", None, None),
    ("larger:1M", "LARGER 1048576", None, None),          # none: the M suffix
    ("is:unread", "UNSEEN", None, None),
    ("is:read", "SEEN", None, None),
    ("is:flagged", "FLAGGED", None, None),
    ("is:unflagged", "UNFLAGGED", None, None),
    ("is:answered", "ANSWERED", None, None),
    ("is:unanswered", "UNANSWERED", None, None),
    ("is:draft", "DRAFT", None, None),
    ("is:deleted", "DELETED", None, None),
    ("keyword:$Work", "KEYWORD $Work", None, None),
    ("-is:read", "NOT SEEN", None, None),
    ("not from:alice", 'NOT FROM "alice"', None, None),
    ("from:alice or from:bob", 'OR FROM "alice" FROM "bob"', None, None),
    ("From:ALICE OR To:erin", 'OR FROM "ALICE" TO "erin"', None, None),
    ("(from:alice or from:bob) larger:10K", 'OR FROM "alice" FROM "bob" LARGER 10240',
     None, None),
    ("-(from:alice or from:bob) is:read", 'NOT (OR FROM "alice" FROM "bob") SEEN', None, None),
    ("subject:budget -from:alice", 'SUBJECT "budget" NOT FROM "alice"', None, None),
    ("folder:Archive%2F2024", "ALL", None, ["Archive/2024"]),
    ("folder:Archive from:alice", 'FROM "alice"', None, ["Archive"]),
    ("folder:INBOX folder:Work is:read", "SEEN", None, ["INBOX", "Work"]),
    ("subject:Grüße", "SUBJECT", "Grüße", None),
    ("from:Jürgen", "FROM", "Jürgen", None),
]
NONE_EXPECTED = {"larger:1M"}


# -- the server side -------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(workdir):
    """A dovecot of this module's own, USER seeded with MESSAGES."""
    s = mailserver.Dovecot(os.path.join(workdir, "dovecot-search"))
    s.start()
    try:
        with s.imaps(USER) as c:
            corpus.seed(c, MESSAGES, folders=FOLDERS)
        yield s
    finally:
        s.stop()


def in_scope(scope):
    """The folders a search covers: scope's folders and those below them."""
    if scope is None:
        return list(FOLDERS)
    return [f for f in FOLDERS if any(f == p or f.startswith(p + "/") for p in scope)]


def server_search(server, keys, literal=None, scope=None, user=USER, folders=None):
    """{(folder, uid)} from UID SEARCH CHARSET UTF-8 <keys> [literal] in each folder."""
    found = set()
    with server.imaps(user) as c:
        for f in folders or in_scope(scope):
            typ, data = c.select(corpus._q(f), readonly=True)
            assert typ == "OK", (f, data)
            if literal is not None:
                c.literal = literal.encode()
            typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", keys)
            assert typ == "OK", (keys, data)
            found |= {(f, int(u)) for u in b" ".join(data).split()}
    return found


def server_body(server, folder, uid, user=USER):
    with server.imaps(user) as c:
        c.select(corpus._q(folder), readonly=True)
        typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
    return [d[1] for d in data if isinstance(d, tuple)][0]


# -- the mount side --------------------------------------------------------------------

def mount_search(mount, server, workdir, user=USER, **options):
    opts = {"ca_file": server.ca, "password_file": password_file(workdir, server, user)}
    opts.update(options)
    return mount(user=user, source=server.url(user), options=opts)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, LC_ALL="C"), **kw)


def status(mnt):
    out = run(["getfattr", "--only-values", "-n", "user.mailfs.status", mnt]).stdout
    return {k: v for k, v in (l.split(": ", 1) for l in out.splitlines() if ": " in l)}


def fetch_counters(mnt):
    st = status(mnt)
    return {k: int(st[k]) for k in ("messages_fetched", "bytes_fetched")}


def search_result(mnt, query, base=""):
    """What MOUNT/base/.search/query shows: ({(folder, uid): file name},
    {folder paths shown as directories}), folder paths '/'-joined from the root."""
    top = os.path.join(mnt, base, ".search", query)
    assert os.path.isdir(top), top

    def raise_(e):
        raise e

    entries, dirs = {}, set()
    for dirpath, _, files in os.walk(top, onerror=raise_):
        rel = os.path.relpath(dirpath, top)
        folder = "/".join(p for p in (base, "" if rel == "." else rel) if p)
        if rel != ".":
            dirs.add(folder)
        for name in files:
            m = re.match(r"(\d+)-.*\.eml$", name)
            assert m, f"{name} in {dirpath} is not a message name"
            entries[(folder, int(m.group(1)))] = name
    return entries, dirs


def ancestors(folders, base=""):
    """The directories a result shows for matches in folders: each folder
    and every level between it and base (base itself excluded)."""
    out = set()
    for f in folders:
        parts = f.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if not base or p.startswith(base + "/"):
                out.add(p)
    return out


def assert_result(mnt, query, expected, base=""):
    """The result equals expected, with the folder's own names and inodes."""
    entries, dirs = search_result(mnt, query, base)
    assert set(entries) == expected, f"{query}: mailfs {sorted(entries)}, IMAP {sorted(expected)}"
    assert dirs == ancestors({f for f, _ in expected}, base), f"{query}: directories {dirs}"
    top = os.path.join(mnt, base, ".search", query)
    for (folder, uid), name in entries.items():
        own = [n for n in os.listdir(os.path.join(mnt, folder)) if n.startswith(f"{uid}-")]
        assert own == [name], f"{folder}: {own} but the search shows {name}"
        in_search = os.stat(os.path.join(top, os.path.relpath(folder, base or "."), name))
        in_folder = os.stat(os.path.join(mnt, folder, name))
        assert ((in_search.st_ino, in_search.st_size, in_search.st_mtime) ==
                (in_folder.st_ino, in_folder.st_size, in_folder.st_mtime)), (folder, name)


def wait_for_log(m, pattern, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        lines = [l for l in m.stderr().splitlines() if re.search(pattern, l)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


# -- every term of the grammar against the server's own SEARCH ---------------------

@pytest.mark.parametrize("query,keys,literal,scope", TERMS, ids=[t[0] for t in TERMS])
def test_term_matches_imap_search(mount, server, workdir, query, keys, literal, scope):
    expected = server_search(server, keys, literal, scope)
    if query in NONE_EXPECTED:
        assert expected == set()
    else:
        # A useful check: the query tells some messages from others.
        assert 0 < len(expected) < len(MESSAGES), (query, expected)
    m = mount_search(mount, server, workdir)
    for f in FOLDERS:   # the folders listed the ordinary way first
        os.listdir(os.path.join(m.mountpoint, f))
    before = fetch_counters(m.mountpoint)
    assert_result(m.mountpoint, query, expected)
    assert fetch_counters(m.mountpoint) == before, "a search fetched message bodies"


@pytest.mark.parametrize("query,keys", [
    ("from:alice", 'FROM "alice"'),
    ("budget", 'TEXT "budget"'),
    ("from:frank", 'FROM "frank"'),      # matches only below Archive: no files in Q/
])
def test_search_in_a_folder_covers_it_and_below(mount, server, workdir, query, keys):
    """MOUNT/Archive/.search/Q: Archive's matches directly in Q/, Archive/2024's
    in Q/2024/; INBOX and Work are never searched."""
    expected = server_search(server, keys, scope=["Archive"])
    assert expected
    m = mount_search(mount, server, workdir)
    assert_result(m.mountpoint, query, expected, base="Archive")
    top = os.path.join(m.mountpoint, "Archive", ".search", query)
    direct = {int(n.split("-")[0]) for n in os.listdir(top) if n.endswith(".eml")}
    assert direct == {u for f, u in expected if f == "Archive"}
    assert ".search" not in run(["ls", "-a", os.path.join(m.mountpoint, "Archive")]).stdout


# -- how .search is reached, and what it shows -------------------------------------

def test_search_is_looked_up_but_never_listed(mount, server, workdir, tmp_path):
    m = mount_search(mount, server, workdir)
    mnt = m.mountpoint
    r = run(["sh", "-c", 'cd "$1" && ls', "sh", os.path.join(mnt, ".search", "from:alice")])
    assert r.returncode == 0 and r.stdout.split() == ["Archive", "INBOX"], r.stdout + r.stderr
    assert os.path.isdir(os.path.join(mnt, ".search", "is:flagged"))
    assert os.path.isdir(os.path.join(mnt, "Archive", ".search", "budget"))

    ls = run(["ls", "-a", mnt])
    assert ls.returncode == 0 and ".search" not in ls.stdout.split(), ls.stdout
    assert ".search" not in os.listdir(mnt)
    find = run(["find", mnt])
    assert find.returncode == 0, find.stderr
    assert not [p for p in find.stdout.splitlines() if ".search" in p]
    copy = str(tmp_path / "copy")
    r = run(["rsync", "-a", mnt + "/", copy + "/"])
    assert r.returncode == 0, r.stderr
    copied = [os.path.join(d, n) for d, ds, fs in os.walk(copy) for n in ds + fs]
    assert not [p for p in copied if ".search" in p]
    assert sum(len(fs) for _, _, fs in os.walk(copy)) == len(MESSAGES)

    # For tab completion: the queries looked up before.
    assert os.stat(os.path.join(mnt, ".search"))
    listed = run(["ls", os.path.join(mnt, ".search")]).stdout.splitlines()
    assert {"from:alice", "is:flagged"} <= set(listed), listed


def test_entries_are_the_messages_themselves(mount, server, workdir):
    """cat, stat and getfattr of an entry give the folder's message."""
    expected = server_search(server, "LARGER 10240")
    m = mount_search(mount, server, workdir)
    entries, _ = search_result(m.mountpoint, "larger:10K")
    assert set(entries) == expected
    top = os.path.join(m.mountpoint, ".search", "larger:10K")
    for (folder, uid), name in entries.items():
        found, own = os.path.join(top, folder, name), os.path.join(m.mountpoint, folder, name)
        cat = subprocess.run(["cat", found], capture_output=True, check=True).stdout
        assert cat == server_body(server, folder, uid)
        assert cat == subprocess.run(["cat", own], capture_output=True, check=True).stdout
        st = run(["stat", "-c", "%i %s %Y %h %F", found, own]).stdout.splitlines()
        assert st[0] == st[1] and st[0].endswith("regular file"), st
        attrs = [run(["getfattr", "-d", "-e", "text", p]).stdout.split("\n", 1)[1]
                 for p in (found, own)]
        assert attrs[0] == attrs[1] and "user.imap.flags=" in attrs[0], attrs


@pytest.mark.parametrize("query,shown", [
    ("from:alice since:2024-01-01", ['FROM "alice"', "SINCE 1-Jan-2024"]),
    ('subject:"two words"', ['SUBJECT "two words"']),
    ("-is:read larger:10K", ["NOT SEEN", "LARGER 10240"]),
    ("(from:alice or from:bob)", ['OR FROM "alice" FROM "bob"']),
    ("subject:Grüße", ["CHARSET UTF-8", 'SUBJECT "Grüße"']),
])
def test_query_attribute_shows_the_search_sent(mount, server, workdir, query, shown):
    m = mount_search(mount, server, workdir)
    r = run(["getfattr", "-n", "user.mailfs.query", "--only-values",
             os.path.join(m.mountpoint, ".search", query)])
    assert r.returncode == 0, r.stderr
    for s in shown:
        assert s in r.stdout, r.stdout
    # ASCII programs carry no CHARSET; dovecot has ESEARCH, so RETURN (ALL) may lead.
    assert ("CHARSET UTF-8" in r.stdout) == ("Grüße" in query)


def test_searches_fetch_no_body(mount, server, workdir):
    m = mount_search(mount, server, workdir)
    for f in FOLDERS:
        os.listdir(os.path.join(m.mountpoint, f))
    before = fetch_counters(m.mountpoint)
    for query in ("budget", "body:quarterly", "from:alice or from:bob", "larger:10K",
                  "subject:Grüße", "keyword:$Work"):
        entries, _ = search_result(m.mountpoint, query)
        assert entries
        for (folder, _), name in entries.items():
            os.stat(os.path.join(m.mountpoint, ".search", query, folder, name))
        run(["getfattr", "-n", "user.mailfs.query", os.path.join(m.mountpoint, ".search", query)])
    find = run(["find", os.path.join(m.mountpoint, "Archive", ".search", "text:pizza"), "-ls"])
    assert find.returncode == 0 and "Budget" in find.stdout, find.stdout + find.stderr
    assert fetch_counters(m.mountpoint) == before


# -- a search follows the mailbox --------------------------------------------------

def seed_live(server):
    server.reset_user(LIVE_USER)
    with server.imaps(LIVE_USER) as c:
        corpus.seed(c, [MESSAGES[0], MESSAGES[1]], folders=["INBOX"])


@pytest.mark.parametrize("how", ["refresh", "push"])
def test_appended_message_shows_in_the_search(mount, server, workdir, how):
    seed_live(server)
    options = {"refresh": 2, "idle": "no"} if how == "refresh" else {"refresh": 3600}
    m = mount_search(mount, server, workdir, user=LIVE_USER, **options)
    keys = 'FROM "alice"'
    before = server_search(server, keys, user=LIVE_USER, folders=["INBOX"])
    assert before == {("INBOX", 1)}
    assert set(search_result(m.mountpoint, "from:alice")[0]) == before
    new = message(11, when(2024, 5, 1), ALICE, "Fresh budget", "Appended later.\r\n")
    with server.imaps(LIVE_USER) as c:
        assert c.append("INBOX", "()", imaplib.Time2Internaldate(when(2024, 5, 1)),
                        new)[0] == "OK"
    after = server_search(server, keys, user=LIVE_USER, folders=["INBOX"])
    assert len(after) == 2
    if how == "refresh":
        time.sleep(3)     # older than refresh=2: the next look searches again
    deadline = time.monotonic() + 10
    while set(search_result(m.mountpoint, "from:alice")[0]) != after:
        assert time.monotonic() < deadline, search_result(m.mountpoint, "from:alice")
        time.sleep(0.5)
    entries, _ = search_result(m.mountpoint, "from:alice")
    name = entries[max(after)]
    with open(os.path.join(m.mountpoint, ".search", "from:alice", "INBOX", name), "rb") as f:
        assert f.read() == new


# -- refusals ----------------------------------------------------------------------

@pytest.mark.parametrize("query", ["frm:alice", "since:2024-13-01", "(from:a", "larger:10Q"])
def test_malformed_query_is_enoent_with_a_log_line(mount, server, workdir, query):
    m = mount_search(mount, server, workdir)
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(m.mountpoint, ".search", query))
    lines = wait_for_log(m, r"search.*column \d+")
    assert len(lines) == 1, m.stderr()
    assert query not in run(["ls", os.path.join(m.mountpoint, ".search")]).stdout.splitlines()
    m.unmount()   # logged at info level: no warning to allow


def test_raw_needs_gmail(mount, server, workdir):
    with server.imaps(USER) as c:
        assert b"X-GM-EXT-1" not in b" ".join(c.capability()[1])
    m = mount_search(mount, server, workdir)
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(m.mountpoint, ".search", "raw:anything"))
    assert wait_for_log(m, r"X-GM-EXT-1"), m.stderr()
    m.unmount(allowed=[r"X-GM-EXT-1"])


def test_names_in_search_cannot_change(mount, server, workdir):
    """mkdir, touch, rm, rmdir, mv inside .search and of .search: EROFS, and
    the server keeps every message."""
    all_before = server_search(server, "ALL")
    m = mount_search(mount, server, workdir)
    search = os.path.join(m.mountpoint, ".search")
    q = os.path.join(search, "from:alice")
    entries, _ = search_result(m.mountpoint, "from:alice")
    name = entries[("INBOX", 1)]
    entry = os.path.join(q, "INBOX", name)
    for cmd in (["mkdir", os.path.join(q, "newdir")],
                ["mkdir", os.path.join(search, "frm:new")],
                ["mkdir", os.path.join(q, "INBOX", "newdir")],
                ["touch", os.path.join(q, "INBOX", "new.eml")],
                ["rm", "-f", entry],
                ["rmdir", os.path.join(q, "Archive", "2024")],
                ["rmdir", q],
                ["rmdir", search],
                ["mv", entry, os.path.join(q, "INBOX", "renamed.eml")],
                ["mv", entry, os.path.join(q, "Archive", name)],
                ["mv", q, os.path.join(search, "from:bob")],
                ["mv", search, os.path.join(m.mountpoint, "search-copy")]):
        r = run(cmd)
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (cmd, r.stderr)
    assert os.path.exists(entry) and os.path.isdir(q)
    assert set(search_result(m.mountpoint, "from:alice")[0]) == set(entries)
    assert "search-copy" not in os.listdir(m.mountpoint)
    assert server_search(server, "ALL") == all_before
    assert server_search(server, "DELETED") == {("Archive", 3)}


def test_pop3_view_has_no_search(mount, server, workdir, tmp_path):
    server.reset_user(POP3_USER)
    with server.imaps(POP3_USER) as c:
        corpus.seed(c, [MESSAGES[0]], folders=["INBOX"])
    m = mount(user=POP3_USER, source=server.url(POP3_USER, "pop3s"),
              options={"ca_file": server.ca,
                       "password_file": password_file(workdir, server, POP3_USER),
                       "pop3_archive": str(tmp_path / "archive")})
    assert ".search" not in os.listdir(m.mountpoint)
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(m.mountpoint, ".search", "x"))
