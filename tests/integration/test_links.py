# SPDX-License-Identifier: GPL-2.0-or-later
"""Hard links: one inode per message across folders (mailfs(1), Links; the
hardlinks and virtual_folders options; src/model/tree.h, INODE NUMBERS and
OBJECTS), checked with the tools users run (stat, cat, rsync -aH, du, ln,
rm, the user.imap.flags attribute) against three servers:

  - Cyrus (a private instance, unpacked_servers.py): OBJECTID, so a
    server-side copy keeps its EMAILID and is one more name of one inode;
  - a scripted Gmail (gmail_imapd.py): X-GM-EXT-1, each label is a folder
    and a name of the message (All Mail too, with virtual_folders=show);
  - the session's dovecot (conftest.py): neither, so nothing changes.

Each test makes its own folders and messages on the server (the test's own
imaplib client, or the scripted server's API), then mounts, so a test
depends on no other. Mounts run with prefetch=0 (every body fetched is a
reader's, counted in user.mailfs.status) and refresh=0 (ls shows the
server as it is, whatever the mount did); the flag tests with refresh=3600,
so only one set of flags per inode can show a flag through the other name. Waits poll with a deadline that
only guards against a hang; nothing is timed."""

import errno
import itertools
import os
import re
import shutil
import subprocess
import time

import pytest

import unpacked_servers
from conftest import Mount, password_file, node_tag
from gmail_imapd import ALL_MAIL, INBOX, GmailServer

CYRUS_USER, CYRUS_PASSWORD = "lena", "lena-Secret-8"
DOVECOT_USER = "lia"
TLS_NONE = r"warning: tls=none"
HANG_GUARD = 30  # seconds: the longest any wait may take before the test fails
OPTIONS = {"prefetch": 0, "refresh": 0}
_serial = itertools.count(1)


# -- messages, files, tools -----------------------------------------------------------

def message(subject, text="Hello."):
    """A message of its own: unique Message-ID (Cyrus's EMAILID is the content's)."""
    n = next(_serial)
    return (f"From: Alice Example <alice@example.org>\r\nTo: Lena <lena@example.org>\r\n"
            f"Subject: {subject}\r\nDate: Fri, 01 Mar 2024 10:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <links-{n}-{os.getpid()}@mailfs.test>\r\n\r\n"
            f"{text} ({n})\r\n").encode()


def names(folder):
    """{uid: file name} of the messages listed in one folder of the mount."""
    out = {}
    for name in os.listdir(folder):
        m = re.match(r"(\d+)(?:-.*)?\.eml$", name)
        if m:
            out[int(m.group(1))] = name
    return out


def path_of(folder, uid):
    """The path of UID's file in a folder of the mount (listing the folder)."""
    found = names(folder)
    assert uid in found, f"UID {uid} not listed in {folder}: {found}"
    return os.path.join(folder, found[uid])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(predicate, what):
    """A hang guard, not a timed assertion: poll until predicate() is true.
    what: the text of the failure, or a function giving it then."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"gave up after {HANG_GUARD}s waiting for {what}")
        time.sleep(0.2)


def nlink_becomes(path, n, folder):
    """Wait until path shows st_nlink n, listing folder each time."""
    def check():
        os.listdir(folder)
        return os.stat(path).st_nlink == n
    wait_for(check, lambda: f"st_nlink {n} of {path} (it is {os.stat(path).st_nlink})")


def status(mountpoint):
    """The counters of the mount's user.mailfs.status attribute."""
    text = os.getxattr(mountpoint, "user.mailfs.status").decode()
    return {k: v for k, v in (l.split(": ", 1) for l in text.splitlines() if ": " in l)}


def fetched(mountpoint):
    """(messages_fetched, bytes_fetched) so far."""
    s = status(mountpoint)
    return int(s["messages_fetched"]), int(s["bytes_fetched"])


def assert_read_once(m, first, second):
    """Reading one name fetches the body once; the other name reads it from
    the cache."""
    before = fetched(m.mountpoint)
    body = read(first)
    after_first = fetched(m.mountpoint)
    assert after_first[0] == before[0] + 1
    assert read(second) == body
    assert fetched(m.mountpoint) == after_first, "the second name fetched the body again"


def flags(path):
    return set(os.getxattr(path, "user.imap.flags").decode().split())


def set_flags(path, value):
    os.setxattr(path, "user.imap.flags", value.encode())


def ln(src, folder):
    """ln SRC FOLDER/ as a user runs it (C locale: its messages are checked)."""
    return subprocess.run(["ln", src, folder + "/"], capture_output=True, text=True,
                          env=dict(os.environ, LC_ALL="C"))


def assert_ln_fails(src, folder, code):
    r = ln(src, folder)
    assert r.returncode != 0, f"ln {src} {folder}/ succeeded; {os.strerror(code)} expected"
    assert os.strerror(code) in r.stderr, r.stderr


def rsync_hardlinks(src, dest):
    shutil.rmtree(dest, ignore_errors=True)
    r = subprocess.run(["rsync", "-aH", src + "/", dest + "/"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def du_bytes(*paths):
    """du -sbc PATHS: apparent bytes, every inode counted once across them all."""
    out = subprocess.run(["du", "-sbc", *paths], capture_output=True, text=True,
                         check=True).stdout
    return int(out.splitlines()[-1].split()[0])


def dir_bytes(*folders):
    """The apparent size of the directories themselves (du counts them too)."""
    return sum(os.stat(f).st_size for f in folders)


def assert_one_inode(*paths, nlink):
    stats = [os.stat(p) for p in paths]
    assert len({s.st_ino for s in stats}) == 1, \
        f"not one inode: {[(p, s.st_ino) for p, s in zip(paths, stats)]}"
    for p, s in zip(paths, stats):
        assert s.st_nlink == nlink, f"{p}: st_nlink {s.st_nlink}, {nlink} expected"
    return stats[0]


def assert_classic_inode(path, uid):
    """A message inode as before links: (EPOCH << 32) | UID, below 2^61, one name."""
    st = os.stat(path)
    assert st.st_ino & 0xFFFFFFFF == uid, f"{path}: st_ino {st.st_ino:#x}, UID {uid}"
    assert st.st_ino >> 32 >= 1 and st.st_ino < 1 << 61, f"{path}: st_ino {st.st_ino:#x}"
    assert st.st_nlink == 1, f"{path}: st_nlink {st.st_nlink}"
    return st


def assert_separate_files(account, mountpoint, folder_a, uid_a, folder_b, uid_b):
    """Without object ids: a server copy is a file of its own in each
    folder, inode numbers as before links, and ln is refused (nothing copied)."""
    a, b = (os.path.join(mountpoint, f) for f in (folder_a, folder_b))
    sa = assert_classic_inode(path_of(a, uid_a), uid_a)
    sb = assert_classic_inode(path_of(b, uid_b), uid_b)
    assert sa.st_ino != sb.st_ino
    assert_ln_fails(path_of(a, uid_a), b, errno.EPERM)
    assert len(account.messages(folder_b)) == 1


def is_object(st):
    """Whether an inode number is an object's (tree.h: bit 61 alone of the top three)."""
    return st.st_ino >> 61 == 1


# -- the server side: imaplib on Cyrus and dovecot ----------------------------------------

def response_code(c, code):
    """The data of the last [CODE ...] imaplib kept, split in words."""
    typ, data = c.response(code)
    assert data and data[-1], f"no {code} in the server's answer"
    return data[-1].decode().split()


class ImapAccount:
    """One user of a real server through the test's own imaplib client. Folder
    names have no separator and no non-ASCII: they are the same on the wire."""

    def __init__(self, server, user):
        self.server = server
        self.user = user
        with self.imap() as c:
            self.caps = set(c.capabilities)
        self.objectid = "OBJECTID" in self.caps

    def imap(self):
        return self.server.imaps(self.user)

    def url(self):
        return self.server.url(self.user)

    def create(self, *folders):
        with self.imap() as c:
            for f in folders:
                typ, data = c.create(f)
                assert typ == "OK" or b"exists" in data[0].lower(), f"CREATE {f}: {data}"

    def append(self, folder, body, flags=""):
        """APPEND; the new UID (APPENDUID)."""
        with self.imap() as c:
            typ, data = c.append(folder, f"({flags})", None, body)
            assert typ == "OK", f"APPEND {folder}: {data}"
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0])
            return int(m.group(1))

    def copy(self, src, uid, dst):
        """UID COPY; the copy's UID in dst (COPYUID)."""
        with self.imap() as c:
            c.select(src)
            typ, data = c.uid("COPY", str(uid), dst)
            assert typ == "OK", f"UID COPY {uid} {dst}: {data}"
            return int(response_code(c, "COPYUID")[2])

    def messages(self, folder):
        """{uid: (emailid or None, set of flags)}."""
        items = "(UID FLAGS EMAILID)" if self.objectid else "(UID FLAGS)"
        out = {}
        with self.imap() as c:
            typ, _ = c.select(folder, readonly=True)
            assert typ == "OK", f"SELECT {folder}"
            typ, data = c.uid("FETCH", "1:*", items)
            for line in data:
                if not line:
                    continue
                line = line.decode() if isinstance(line, bytes) else line[0].decode()
                uid = int(re.search(r"UID (\d+)", line).group(1))
                emailid = re.search(r"EMAILID \(([^)]*)\)", line)
                flagset = set(re.search(r"FLAGS \(([^)]*)\)", line).group(1).split())
                out[uid] = (emailid.group(1) if emailid else None, flagset)
        return out

    def emailid(self, folder, uid):
        return self.messages(folder)[uid][0]

    def uids_of(self, folder, emailid):
        return [u for u, (e, _) in self.messages(folder).items() if e == emailid]


# -- mounts ------------------------------------------------------------------------------

@pytest.fixture
def mounts(mailfs_bin, workdir, request):
    """Factory: mounts(source, password_file, options, allowed) -> started Mount.

    At teardown every mount is unmounted and its daemon must exit 0 with no
    unexpected warning; on any failure the mount is removed lazily and the
    daemon killed, so nothing is left behind."""
    made = []

    def make(source, password, options=None, allowed=()):
        tag = f"links-{node_tag(request)}-{len(made)}"
        opts = {"password_file": password, "cache_dir": os.path.join(workdir, f"cache-{tag}")}
        opts.update(OPTIONS)
        opts.update(options or {})
        m = Mount(mailfs_bin, source, os.path.join(workdir, f"mnt-{tag}"), opts, workdir)
        m.allowed = allowed
        made.append(m)
        m.start()
        return m

    yield make
    errors = []
    for m in made:
        try:
            if m.proc is not None and m.proc.poll() is None:
                m.unmount(allowed=m.allowed)
        except AssertionError as e:
            errors.append(str(e))
        finally:
            m.kill()
    if errors:
        pytest.fail("\n".join(errors))


# -- Cyrus: OBJECTID -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cyrus(workdir):
    """A private Cyrus (altnamespace: folders beside INBOX) with a Trash."""
    server = unpacked_servers.Cyrus(os.path.join(workdir, "links-cyrus"),
                                    {CYRUS_USER: CYRUS_PASSWORD}, altnamespace=True)
    try:
        server.start()
        account = ImapAccount(server, CYRUS_USER)
        account.create("Trash")
        yield account
    finally:
        server.stop()


@pytest.fixture
def cyrus_mount(cyrus, mounts, workdir):
    """Factory: a mount of the Cyrus account with these options (after the
    test made its folders and messages)."""
    def make(**options):
        return mounts(cyrus.url(), password_file(workdir, cyrus.server, CYRUS_USER),
                      dict({"ca_file": cyrus.server.ca}, **options))
    return make


def copied_pair(account, a, b, subject):
    """Folders a and b (new), one message APPENDed to a and COPYed by the test
    into b. a gets a filler message first, so the two UIDs (and names)
    differ. Returns (uid in a, uid in b)."""
    account.create(a, b)
    account.append(a, message(f"{subject} filler"))
    uid_a = account.append(a, message(subject))
    uid_b = account.copy(a, uid_a, b)
    assert uid_a != uid_b
    return uid_a, uid_b


def test_cyrus_copy_keeps_its_emailid(cyrus):
    """The setup the other Cyrus tests stand on: OBJECTID offered, a COPY
    keeps the EMAILID, two messages have two."""
    assert cyrus.objectid
    uid_a, uid_b = copied_pair(cyrus, "SetupA", "SetupB", "Setup")
    assert cyrus.emailid("SetupA", uid_a) == cyrus.emailid("SetupB", uid_b)
    assert len({e for e, _ in cyrus.messages("SetupA").values()}) == 2


def test_cyrus_copy_is_one_inode_with_two_names(cyrus, cyrus_mount):
    uid_a, uid_b = copied_pair(cyrus, "OneA", "OneB", "One inode")
    m = cyrus_mount()
    a, b = (os.path.join(m.mountpoint, f) for f in ("OneA", "OneB"))
    # st_nlink counts every folder from the first listing of any: rsync -H,
    # du and tar look for links only among files with more than one.
    first = path_of(a, uid_a)
    assert os.stat(first).st_nlink == 2
    st = assert_one_inode(first, path_of(b, uid_b), nlink=2)
    assert is_object(st)
    assert read(first) == read(path_of(b, uid_b))
    # The filler sits in one folder only: one name.
    [lone] = [u for u in names(a) if u != uid_a]
    assert os.stat(path_of(a, lone)).st_nlink == 1


def test_cyrus_reading_two_names_fetches_once(cyrus, cyrus_mount):
    uid_a, uid_b = copied_pair(cyrus, "ReadA", "ReadB", "Read once")
    m = cyrus_mount()
    assert_read_once(m, path_of(os.path.join(m.mountpoint, "ReadA"), uid_a),
                     path_of(os.path.join(m.mountpoint, "ReadB"), uid_b))


def test_cyrus_a_name_listed_later_reads_the_cached_body(cyrus, cyrus_mount):
    """The body was cached through one name; a copy then lands in a folder
    that comes first (it becomes the message's first name): reading goes
    on from the cache, with no second fetch."""
    cyrus.create("EarlyA", "LateB")
    cyrus.append("LateB", message("Filler so the UIDs differ"))
    uid_b = cyrus.append("LateB", message("Cached before the copy"))
    m = cyrus_mount()
    a, b = (os.path.join(m.mountpoint, f) for f in ("EarlyA", "LateB"))
    assert names(a) == {}
    body = read(path_of(b, uid_b))
    after_first = fetched(m.mountpoint)
    uid_a = cyrus.copy("LateB", uid_b, "EarlyA")
    # refresh=0: the next look at EarlyA lists the copy.
    assert_one_inode(path_of(a, uid_a), path_of(b, uid_b), nlink=2)
    assert read(path_of(a, uid_a)) == body
    assert read(path_of(b, uid_b)) == body
    assert fetched(m.mountpoint) == after_first, "the body was fetched again"


def test_cyrus_flags_set_through_one_name_show_through_the_other(cyrus, cyrus_mount):
    uid_a, uid_b = copied_pair(cyrus, "FlagA", "FlagB", "Flag me")
    m = cyrus_mount(refresh=3600)  # no listing again: one inode, one set of flags
    a = path_of(os.path.join(m.mountpoint, "FlagA"), uid_a)
    b = path_of(os.path.join(m.mountpoint, "FlagB"), uid_b)
    assert "\\Flagged" not in flags(b)
    set_flags(a, "\\Flagged")
    assert "\\Flagged" in flags(b)
    # Cyrus keeps flags per mailbox: both copies were stored.
    assert "\\Flagged" in cyrus.messages("FlagA")[uid_a][1]
    assert "\\Flagged" in cyrus.messages("FlagB")[uid_b][1]


def test_cyrus_rsync_H_du_and_tar_count_the_message_once(cyrus, cyrus_mount, workdir):
    cyrus.create("DuA", "DuB")
    uid_a = cyrus.append("DuA", message("Backed up once"))
    cyrus.append("DuB", message("Filler so the UIDs differ"))
    uid_b = cyrus.copy("DuA", uid_a, "DuB")
    m = cyrus_mount()
    a, b = (os.path.join(m.mountpoint, f) for f in ("DuA", "DuB"))
    size = os.stat(path_of(a, uid_a)).st_size
    filler = os.stat(path_of(b, min(names(b)))).st_size
    assert du_bytes(a, b) == dir_bytes(a, b) + size + filler
    backup = os.path.join(workdir, "links-cyrus-backup")
    try:
        rsync_hardlinks(m.mountpoint, backup)
        ba, bb = os.path.join(backup, "DuA"), os.path.join(backup, "DuB")
        assert_one_inode(os.path.join(ba, names(a)[uid_a]), os.path.join(bb, names(b)[uid_b]),
                         nlink=2)
        assert du_bytes(ba, bb) == dir_bytes(ba, bb) + size + filler
        # tar stores the second name as a link to the first.
        r = subprocess.run(["tar", "-cf", backup + ".tar", "-C", m.mountpoint, "DuA", "DuB"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        listing = subprocess.run(["tar", "-tvf", backup + ".tar"], capture_output=True,
                                 text=True, timeout=60).stdout
        assert len([l for l in listing.splitlines() if " link to " in l]) == 1, listing
    finally:
        shutil.rmtree(backup, ignore_errors=True)
        if os.path.exists(backup + ".tar"):
            os.unlink(backup + ".tar")


def test_cyrus_rm_of_one_name_leaves_the_other(cyrus, cyrus_mount):
    uid_a, uid_b = copied_pair(cyrus, "RmA", "RmB", "Remove one name")
    emailid = cyrus.emailid("RmA", uid_a)
    m = cyrus_mount()
    a, b = (os.path.join(m.mountpoint, f) for f in ("RmA", "RmB"))
    trash = os.path.join(m.mountpoint, "Trash")
    gone, kept = path_of(a, uid_a), path_of(b, uid_b)
    body = read(kept)
    ino = os.stat(kept).st_ino
    os.unlink(gone)
    # The server: gone from that folder, moved to the Trash (delete=trash).
    assert cyrus.uids_of("RmA", emailid) == []
    assert cyrus.uids_of("RmB", emailid) == [uid_b]
    [uid_t] = cyrus.uids_of("Trash", emailid)
    assert not os.path.exists(gone)
    assert read(kept) == body and os.stat(kept).st_ino == ino
    # The moved copy keeps its identity: a listed Trash holds a name of it.
    nlink_becomes(kept, 2, trash)
    assert os.stat(path_of(trash, uid_t)).st_ino == ino
    # rm in the Trash expunges: one name left.
    os.unlink(path_of(trash, uid_t))
    assert cyrus.uids_of("Trash", emailid) == []
    nlink_becomes(kept, 1, b)
    assert read(kept) == body


def test_cyrus_ln_makes_a_server_copy(cyrus, cyrus_mount):
    cyrus.create("LnA", "LnB")
    cyrus.append("LnA", message("Filler so the UIDs differ"))
    uid_a = cyrus.append("LnA", message("Linked by ln"))
    emailid = cyrus.emailid("LnA", uid_a)
    m = cyrus_mount()
    a, b = (os.path.join(m.mountpoint, f) for f in ("LnA", "LnB"))
    src = path_of(a, uid_a)
    assert os.stat(src).st_nlink == 1
    r = ln(src, b)
    assert r.returncode == 0, r.stderr
    [uid_b] = cyrus.uids_of("LnB", emailid)
    # The new name is LnB's for the copy's UID, not the name ln asked for.
    assert uid_b != uid_a
    assert names(b) == {uid_b: names(a)[uid_a].replace(f"{uid_a}-", f"{uid_b}-", 1)}
    assert_one_inode(src, path_of(b, uid_b), nlink=2)
    # LnB holds the message now: a second ln is refused, nothing copied.
    assert_ln_fails(src, b, errno.EEXIST)
    assert cyrus.uids_of("LnB", emailid) == [uid_b]


def test_cyrus_rsync_H_restore_links_on_the_server(cyrus, cyrus_mount, workdir):
    """A backup's hard links restored with rsync -aH: rsync writes the first
    name and links the others to it; each link is a UID COPY of the message
    its APPEND made, so the server holds one message in both folders."""
    backup = os.path.join(workdir, "links-cyrus-restore")
    body = message("Restored with its links")
    try:
        for folder in ("RestA", "RestB"):
            os.makedirs(os.path.join(backup, folder))
        first = os.path.join(backup, "RestA", "7-Restored_with_its_links.eml")
        with open(first, "wb") as f:
            f.write(body.replace(b"\r\n", b"\n"))
        os.link(first, os.path.join(backup, "RestB", "7-Restored_with_its_links.eml"))
        m = cyrus_mount(log="imap")
        # Into the mount: no rsync_hardlinks, which empties its destination.
        r = subprocess.run(["rsync", "-aH", backup + "/", m.mountpoint + "/"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        [uid_a] = cyrus.messages("RestA")
        emailid = cyrus.emailid("RestA", uid_a)
        [uid_b] = cyrus.uids_of("RestB", emailid)
        assert len(cyrus.messages("RestB")) == 1
        a, b = (os.path.join(m.mountpoint, f) for f in ("RestA", "RestB"))
        nlink_becomes(path_of(a, uid_a), 2, a)
        assert_one_inode(path_of(a, uid_a), path_of(b, uid_b), nlink=2)
        # A link, not a second APPEND of the same bytes (rsync copies when
        # link fails, and Cyrus's EMAILID is the content's: the same either way).
        sent = [l for l in m.stderr().splitlines() if " C: " in l]
        assert len([l for l in sent if "APPEND" in l]) == 1, sent
        # rsync picks which name it writes first: the other is the copy.
        assert len([l for l in sent if "UID COPY " in l]) == 1, sent
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def test_cyrus_hardlinks_no_keeps_one_inode_per_entry(cyrus, cyrus_mount):
    uid_a, uid_b = copied_pair(cyrus, "NoLinkA", "NoLinkB", "No links")
    m = cyrus_mount(hardlinks="no")
    assert_separate_files(cyrus, m.mountpoint, "NoLinkA", uid_a, "NoLinkB", uid_b)


# -- Gmail: X-GM-EXT-1 ---------------------------------------------------------------------

@pytest.fixture
def gmail():
    """A scripted Gmail of the test's own, with the labels Work and Receipts.
    Its threads end with the test; a server-side error fails it."""
    with GmailServer(labels=("Work", "Receipts")) as srv:
        yield srv
    assert not srv.errors, srv.errors
    assert not srv.bad, f"the scripted Gmail answered BAD: {srv.bad}"


@pytest.fixture
def gmail_mount(gmail, mounts, workdir):
    """Factory: a mount of the scripted Gmail with these options."""
    password = os.path.join(workdir, "links-gmail.password")
    with open(password, "w") as f:
        f.write(gmail.password + "\n")
    os.chmod(password, 0o600)

    def make(**options):
        return mounts(gmail.url(), password, dict({"tls": "none"}, **options),
                      allowed=(TLS_NONE,))
    return make


def gmail_path(m, gmail, folder, msgid):
    """The path of a message's name in a folder of the mount."""
    uid = gmail.uid_of(folder, msgid)
    assert uid is not None, f"{msgid} not in {folder} on the server"
    return path_of(os.path.join(m.mountpoint, folder), uid)


def test_gmail_server_answers_like_gmail(gmail):
    """The setup the other Gmail tests stand on, through imaplib: one
    X-GM-MSGID in every label folder, a UID per folder, labels, COPY adds a
    label, flags per message."""
    import imaplib
    msgid = gmail.add_message(message("Setup"), labels=(INBOX, "Work"))
    gmail.add_message(message("Other"), labels=("Work",))
    c = imaplib.IMAP4("127.0.0.1", gmail.port)
    try:
        assert "X-GM-EXT-1" in c.capabilities
        c.login(gmail.user, gmail.password)
        seen = {}
        for folder in (INBOX, "Work", f'"{ALL_MAIL}"'):
            c.select(folder)
            typ, data = c.uid("FETCH", "1:*", "(UID X-GM-MSGID X-GM-LABELS FLAGS)")
            assert typ == "OK", data
            for line in data:
                uid, gm = re.search(rb"UID (\d+) X-GM-MSGID (\d+)", line).groups()
                if int(gm) == msgid:
                    seen[folder] = int(uid)
                    assert b'X-GM-LABELS (\\Inbox "Work")' in line, line
        assert set(seen) == {INBOX, "Work", f'"{ALL_MAIL}"'}
        assert seen[INBOX] == 1 and seen["Work"] == 1 and seen[f'"{ALL_MAIL}"'] == 1
        c.select("Work")
        typ, data = c.uid("SEARCH", None, "X-GM-MSGID", str(msgid))
        assert data[0] == b"1"
        c.uid("COPY", "1", "Receipts")
        assert response_code(c, "COPYUID")[1:] == ["1", "1"]
        assert gmail.labels_of(msgid) == {INBOX, "Work", "Receipts"}
        c.uid("STORE", "1", "+FLAGS.SILENT", "(\\Flagged)")
        c.select("Receipts")
        typ, data = c.uid("FETCH", "1", "(FLAGS)")
        assert b"\\Flagged" in data[0]
    finally:
        c.logout()


def test_gmail_labels_are_names_of_one_inode(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    lone = gmail.add_message(message("Only a receipt"), labels=("Receipts",))
    m = gmail_mount()
    inbox = gmail_path(m, gmail, INBOX, both)
    assert os.stat(inbox).st_nlink == 2  # from the first listing on
    st = assert_one_inode(inbox, gmail_path(m, gmail, "Work", both), nlink=2)
    assert is_object(st)
    assert os.stat(gmail_path(m, gmail, "Receipts", lone)).st_nlink == 1
    # All Mail is hidden (virtual_folders=hide): no name there.
    assert not os.path.exists(os.path.join(m.mountpoint, ALL_MAIL))
    # The listing asks for the identity with the rest: no extra round trip.
    listings = [c for c in gmail.commands() if re.match(r"UID FETCH 1:\* ", c)]
    assert listings and all("X-GM-MSGID" in c for c in listings), listings


def test_gmail_all_mail_is_one_more_name(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    m = gmail_mount(virtual_folders="show")
    assert_one_inode(gmail_path(m, gmail, INBOX, both), gmail_path(m, gmail, "Work", both),
                     gmail_path(m, gmail, ALL_MAIL, both), nlink=3)


def test_gmail_rsync_H_keeps_the_account_whole(gmail, gmail_mount, workdir):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    bare = gmail.add_message(message("Archived, no label"), labels=())
    receipt = gmail.add_message(message("A receipt"), labels=("Receipts",))
    m = gmail_mount(virtual_folders="show")
    sizes = {g: os.stat(gmail_path(m, gmail, ALL_MAIL, g)).st_size for g in (both, bare, receipt)}
    backup = os.path.join(workdir, "links-gmail-backup")
    try:
        rsync_hardlinks(m.mountpoint, backup)

        def saved(folder, msgid):
            return os.path.join(backup, folder,
                                os.path.basename(gmail_path(m, gmail, folder, msgid)))

        assert_one_inode(saved(INBOX, both), saved("Work", both), saved(ALL_MAIL, both), nlink=3)
        assert_one_inode(saved("Receipts", receipt), saved(ALL_MAIL, receipt), nlink=2)
        assert os.stat(saved(ALL_MAIL, bare)).st_nlink == 1
        assert read(saved(ALL_MAIL, bare)) == read(gmail_path(m, gmail, ALL_MAIL, bare))
        dirs = [d for d, _, _ in os.walk(backup)]
        assert du_bytes(backup) == dir_bytes(*dirs) + sum(sizes.values())
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def test_gmail_rm_of_a_label_name_removes_the_label_only(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    m = gmail_mount()
    work, inbox = gmail_path(m, gmail, "Work", both), gmail_path(m, gmail, INBOX, both)
    body = read(inbox)
    os.unlink(work)
    assert gmail.labels_of(both) == {INBOX}
    assert not gmail.in_trash(both)
    assert gmail.uid_of(ALL_MAIL, both) is not None
    assert not os.path.exists(work)
    nlink_becomes(inbox, 1, os.path.dirname(inbox))
    assert read(inbox) == body


def test_gmail_rm_of_the_last_shown_name_moves_to_the_trash(gmail, gmail_mount):
    only = gmail.add_message(message("Only in the inbox"), labels=(INBOX,))
    m = gmail_mount()  # All Mail hidden: INBOX holds the last shown name
    os.unlink(gmail_path(m, gmail, INBOX, only))
    assert gmail.in_trash(only)
    assert gmail.labels_of(only) == set() and gmail.uid_of(ALL_MAIL, only) is None


def test_gmail_rm_in_all_mail_moves_to_the_trash(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    m = gmail_mount(virtual_folders="show")
    inbox = gmail_path(m, gmail, INBOX, both)
    os.unlink(gmail_path(m, gmail, ALL_MAIL, both))
    assert gmail.in_trash(both)
    assert gmail.labels_of(both) == set()
    wait_for(lambda: os.path.basename(inbox) not in os.listdir(os.path.dirname(inbox)),
             "the INBOX name to go")


def test_gmail_ln_adds_a_label(gmail, gmail_mount):
    gmail.add_message(message("Filler so the UIDs differ"), labels=("Receipts",))
    msgid = gmail.add_message(message("Linked by ln"), labels=(INBOX,))
    m = gmail_mount()
    src = gmail_path(m, gmail, INBOX, msgid)
    receipts = os.path.join(m.mountpoint, "Receipts")
    r = ln(src, receipts)
    assert r.returncode == 0, r.stderr
    assert gmail.labels_of(msgid) == {INBOX, "Receipts"}
    assert any(c.startswith("UID COPY ") and "Receipts" in c for c in gmail.commands())
    uid = gmail.uid_of("Receipts", msgid)
    assert uid != gmail.uid_of(INBOX, msgid)
    assert os.path.basename(src) not in os.listdir(receipts)
    assert_one_inode(src, path_of(receipts, uid), nlink=2)
    assert_ln_fails(src, receipts, errno.EEXIST)
    assert len([u for u, g in gmail.folder_messages("Receipts").items() if g == msgid]) == 1


def test_gmail_flags_set_through_one_name_are_one_store(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    m = gmail_mount(refresh=3600)  # no listing again: one inode, one set of flags
    inbox, work = gmail_path(m, gmail, INBOX, both), gmail_path(m, gmail, "Work", both)
    assert "\\Flagged" not in flags(work)
    set_flags(inbox, "\\Flagged")
    assert "\\Flagged" in gmail.flags_of(both)
    stores = [c for c in gmail.commands() if c.startswith("UID STORE ")]
    assert len(stores) == 1, f"Gmail keeps flags per message: one STORE, not {stores}"
    assert "\\Flagged" in flags(work)


def test_gmail_reading_two_names_fetches_once(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work", "x" * 5000), labels=(INBOX, "Work"))
    m = gmail_mount()
    assert_read_once(m, gmail_path(m, gmail, INBOX, both), gmail_path(m, gmail, "Work", both))


def test_gmail_hardlinks_no_keeps_one_inode_per_label(gmail, gmail_mount):
    both = gmail.add_message(message("Inbox and Work"), labels=(INBOX, "Work"))
    m = gmail_mount(hardlinks="no")
    inbox, work = gmail_path(m, gmail, INBOX, both), gmail_path(m, gmail, "Work", both)
    si = assert_classic_inode(inbox, gmail.uid_of(INBOX, both))
    sw = assert_classic_inode(work, gmail.uid_of("Work", both))
    assert si.st_ino != sw.st_ino
    assert_ln_fails(inbox, os.path.join(m.mountpoint, "Receipts"), errno.EPERM)
    assert gmail.labels_of(both) == {INBOX, "Work"}


# -- dovecot 2.3: no OBJECTID, nothing changes ------------------------------------------------

def test_dovecot_copies_are_inodes_of_their_own(dovecot, mount):
    account = ImapAccount(dovecot, DOVECOT_USER)
    assert not account.objectid and "X-GM-EXT-1" not in account.caps
    uid_a, uid_b = copied_pair(account, "CopyA", "CopyB", "Copied on dovecot")
    m = mount(user=DOVECOT_USER, options=dict(OPTIONS))
    assert_separate_files(account, m.mountpoint, "CopyA", uid_a, "CopyB", uid_b)
