# SPDX-License-Identifier: GPL-2.0-or-later
"""The server matrix: one mount of each real server (dovecot, Cyrus in its
default namespace and with altnamespace, Courier), checked with the tools
users run and against the server with an imaplib client of the test's own.

The servers are module-scoped and so is each mount: the read-only checks
come first (xattrs while the cache is cold, then bytes, rsync), the changes
after them, and the POP3 view of the same account, which takes from INBOX,
last. Cyrus and Courier run from their unpacked Debian packages
(unpacked_servers.py); nothing is installed."""

import base64
import datetime
import imaplib
import os
import poplib
import re
import shutil
import subprocess

import pytest

import corpus
import mailserver
import unpacked_servers
from conftest import Mount, password_file, wait_for

USER = "mia"
PASSWORD = "mia-Secret-9"
# The folder tree, '/'-separated, below the personal namespace.
FOLDERS = ["Archive", "Archive/2024", "Entwürfe", "Отправленные", "Trash"]
SUBJECTS = {
    # subject header: the text mailfs decodes it to
    "Meeting notes for Tuesday": "Meeting notes for Tuesday",
    "=?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=": "Grüße aus München",
    "=?ISO-8859-1?Q?Caf=E9_cr=E8me?=": "Café crème",
}
NEW = (b"From: Zed <zed@example.org>\r\nTo: mia@example.org\r\n"
       b"Subject: Pushed %d\r\nMessage-ID: <matrix-pushed-%d@mailfs.test>\r\n\r\nHello.\r\n")


# A message with an attachment (its filename in RFC 2231 form), for .parts.
REPORT_PDF = bytes(range(256)) * 40
REPORT_TYPE = b'X-Report: yes\r\n'
REPORT_BODY = (b"--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
               b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
               b"Gr=FC=DFe, see the attached report.\r\n"
               b"--b1\r\nContent-Type: application/pdf\r\n"
               b"Content-Disposition: attachment; filename*=UTF-8''Bericht%20M%C3%A4rz.pdf\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n"
               + base64.encodebytes(REPORT_PDF).replace(b"\n", b"\r\n")
               + b"--b1--\r\n")


def message(n, subject, body, extra=b""):
    ctype = ("Content-Type: multipart/mixed; boundary=b1\r\n" if extra == REPORT_TYPE else
             "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
    head = (f"From: Alice Example <alice@example.org>\r\nTo: Mia <mia@example.org>\r\n"
            f"Subject: {subject}\r\nDate: Fri, 01 Mar 2024 09:{n:02d}:00 +0000\r\n"
            f"Message-ID: <matrix-{n}@mailfs.test>\r\nMIME-Version: 1.0\r\n" + ctype)
    return head.encode() + extra + b"\r\n" + body


def corpus_messages():
    """(folder, bytes, internaldate, flags)."""
    when = datetime.datetime(2024, 3, 1, 9, 0, tzinfo=datetime.timezone.utc)
    out = []
    for n, subject in enumerate(SUBJECTS):
        out.append(("INBOX", message(n, subject, b"Hello, this is message %d.\r\n" % n), ()))
    big = b"".join(b"%06d lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n" % i
                   for i in range(6000))
    out.append(("INBOX", message(10, "Big one", big), ("\\Seen",)))
    out.append(("INBOX", message(11, "Umlaute im Text", "äöüß — 日本語\r\n".encode()),
                ("\\Flagged",)))
    out.append(("Archive", message(20, "Archived one", b"old\r\n"), ("\\Seen",)))
    out.append(("Archive/2024", message(21, "Deep message", b"deep\r\n"), ()))
    out.append(("Entwürfe", message(22, "=?UTF-8?Q?Entwurf_f=C3=BCr_Montag?=", b"draft\r\n"),
                ("\\Draft",)))
    out.append(("Отправленные", message(23, "Sent one", b"sent\r\n"), ("\\Seen",)))
    out.append(("Отправленные", message(24, "Report attached", REPORT_BODY,
                                         extra=REPORT_TYPE), ()))
    return [(f, data, when + datetime.timedelta(hours=i), flags)
            for i, (f, data, flags) in enumerate(out)]


class Account:
    """The server side of the test: names in the server's namespace, imaplib."""

    def __init__(self, server):
        self.server = server
        with server.imaps(USER) as c:
            typ, data = c.namespace()
        m = re.match(rb'\(\("([^"]*)" "(.)"\)', data[0])
        self.prefix, self.sep = m.group(1).decode(), m.group(2).decode()

    def name(self, folder):
        """Server name (modified UTF-7, quoted) of a '/'-separated folder."""
        if folder == "INBOX":
            return "INBOX"
        return corpus._q(corpus.mutf7_encode(self.prefix + folder.replace("/", self.sep)))

    def path(self, folder):
        """Path below the mount: INBOX. namespaces show folders under INBOX/."""
        if folder == "INBOX" or not self.prefix:
            return folder
        return self.prefix.rstrip(self.sep) + "/" + folder

    def imap(self):
        return self.server.imaps(USER)

    def folders(self):
        """Every mailbox LIST shows, as a path below the mount."""
        with self.imap() as c:
            typ, lines = c.list()
        out = set()
        for line in lines:
            m = re.match(rb'\(([^)]*)\) (?:"(.)"|NIL) (.*)$', line)
            name = m.group(3).decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            name = corpus.mutf7_decode(name)
            if m.group(2):
                name = name.replace(m.group(2).decode(), "/")
            out.add(name)
        return out

    def messages(self, folder):
        """{uid: (size, internaldate, flags, body)}."""
        out = {}
        with self.imap() as c:
            c.select(self.name(folder), readonly=True)
            typ, data = c.uid("FETCH", "1:*",
                              "(UID RFC822.SIZE INTERNALDATE FLAGS BODY.PEEK[])")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                size = int(re.search(r"RFC822.SIZE (\d+)", head).group(1))
                date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1)
                out[uid] = (size, date, flags, item[1])
        return out

    def seed(self):
        with self.imap() as c:
            for f in FOLDERS:
                typ, data = c.create(self.name(f))
                assert typ == "OK", f"CREATE {f}: {data}"
            for folder, data, date, flags in corpus_messages():
                typ, resp = c.append(self.name(folder), "(" + " ".join(flags) + ")",
                                     imaplib.Time2Internaldate(date), data)
                assert typ == "OK", f"APPEND {folder}: {resp}"


def epoch(internaldate):
    return int(datetime.datetime.strptime(internaldate, "%d-%b-%Y %H:%M:%S %z").timestamp())


def files(path):
    """{uid: name} of the messages in one folder of the mount."""
    out = {}
    for name in os.listdir(path):
        m = re.match(r"(\d+)(?:-.*)?\.eml$", name)
        if m:
            out[int(m.group(1))] = name
    return out


def xattrs(path):
    """Every attribute of a file, as getfattr -d would list them, decoded."""
    return {k: os.getxattr(path, k).decode() for k in os.listxattr(path)}


# -- the servers and one mount each ------------------------------------------------

SERVERS = ["dovecot", "cyrus", "cyrus-altnamespace", "courier"]


def make_server(kind, base):
    users = {USER: PASSWORD}
    if kind == "dovecot":
        # dovecot's readiness check logs alice in.
        return mailserver.Dovecot(base, users=dict(users, alice=mailserver.USERS["alice"]))
    if kind == "courier":
        return unpacked_servers.Courier(base, users)
    return unpacked_servers.Cyrus(base, users, altnamespace=kind.endswith("altnamespace"))


@pytest.fixture(scope="module", params=SERVERS)
def server(request, workdir):
    s = make_server(request.param, os.path.join(workdir, f"matrix-{request.param}"))
    try:
        s.start()
        account = Account(s)
        account.seed()
        account.kind = request.param
        yield account
    finally:
        s.stop()


@pytest.fixture(scope="module")
def mnt(server, mailfs_bin, workdir):
    """One mount of the server for the module; unmounted cleanly at the end."""
    tag = f"matrix-{server.kind}"
    m = Mount(mailfs_bin, server.server.url(USER), os.path.join(workdir, f"mnt-{tag}"),
              {"ca_file": server.server.ca,
               "password_file": password_file(workdir, server.server, USER),
               "cache_dir": os.path.join(workdir, f"cache-{tag}"),
               # Only push can explain new mail the test sees.
               "refresh": 3600}, workdir)
    try:
        m.start()
        yield m
        m.unmount(allowed=(r"(?i)warning: .*(UIDVALIDITY|IDLE)",))
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.kill()
        subprocess.run(["fusermount3", "-uz", m.mountpoint], capture_output=True)


def inbox_files(server, mnt):
    return files(os.path.join(mnt.mountpoint, "INBOX"))


# -- read-only checks ---------------------------------------------------------------

def test_tree_is_the_server_folders(server, mnt):
    out = subprocess.run(["find", mnt.mountpoint, "-type", "d"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    dirs = {os.path.relpath(p, mnt.mountpoint) for p in out} - {"."}
    assert dirs == server.folders()
    for f in FOLDERS + ["INBOX"]:
        assert server.path(f) in dirs, f


def test_listing_asks_for_object_ids(server, mailfs_bin, workdir):
    """With hardlinks on (the default), the listing asks for each message's
    identity where the server offers it (Cyrus: OBJECTID, EMAILID) and not
    where it offers none (dovecot 2.3, Courier); no extra command. On Cyrus
    a server-side copy is then one inode in both folders. A saved listing
    made asking for ids is not used by a mount that does not ask
    (hardlinks=no): that folder is listed in full, and the copy is a file
    of its own again."""
    offers = server.kind.startswith("cyrus")
    cache = os.path.join(workdir, f"cache-objid-{server.kind}")
    copy = None
    if offers:
        # Cyrus pushes nothing but INBOX (no NOTIFY): the module's mount
        # does not see this copy come and go in Archive.
        with server.imap() as c:
            c.select("INBOX")
            typ, data = c.uid("COPY", "1", server.name("Archive"))
            assert typ == "OK", data
            c.select(server.name("Archive"), readonly=True)
            typ, data = c.uid("SEARCH", "HEADER", "Message-ID", "<matrix-0@mailfs.test>")
            assert typ == "OK" and len(data[0].split()) == 1, data
            copy = int(data[0])

    def mount_and_list(**extra):
        m = Mount(mailfs_bin, server.server.url(USER),
                  os.path.join(workdir, f"mnt-objid-{server.kind}"),
                  {"ca_file": server.server.ca,
                   "password_file": password_file(workdir, server.server, USER),
                   "cache_dir": cache, "refresh": 3600, "idle": "no", "log": "imap",
                   **extra}, workdir)
        inodes = set()
        m.start()
        try:
            assert os.listdir(os.path.join(m.mountpoint, "INBOX"))
            if copy:
                for folder, uid in (("INBOX", 1), (server.path("Archive"), copy)):
                    d = os.path.join(m.mountpoint, folder)
                    name = [n for n in os.listdir(d) if n.startswith(f"{uid}-")]
                    assert len(name) == 1, (folder, uid, os.listdir(d))
                    inodes.add(os.stat(os.path.join(d, name[0])).st_ino)
        finally:
            m.unmount(allowed=(r"warning: saved listing not used: .* object ids",))
        lines = m.stderr().splitlines()
        sent = [l for l in lines if " C: " in l and ("UID FETCH" in l or "EXAMINE" in l)]
        unused = [l for l in lines if "saved listing not used" in l]
        answered = [l for l in lines if " S: " in l and re.search(r"EMAILID \(M", l)]
        return sent, unused, answered, inodes

    def listed_in_full(sent):
        """The mailboxes a UID FETCH 1:* listed (the one its session had
        selected last)."""
        selected, full = {}, set()
        for l in sent:
            m = re.search(r"(imap#\d+) C: \S+ (?:EXAMINE|SELECT) (\S+)", l)
            if m:
                selected[m.group(1)] = m.group(2).strip('"')
            m = re.search(r"(imap#\d+) C: \S+ UID FETCH 1:\* ", l)
            if m:
                full.add(selected.get(m.group(1)))
        return full

    try:
        sent, unused, answered, inodes = mount_and_list()
        listing = [l for l in sent if "RFC822.SIZE" in l]
        assert listing, sent
        assert all(("EMAILID" in l) == offers for l in listing), listing
        assert bool(answered) == offers
        assert not any("X-GM-MSGID" in l for l in sent), sent
        assert not unused
        assert len(inodes) == (1 if offers else 0), inodes
        # The same settings again: the saved listings (with their ids) are used.
        sent, unused, _, inodes = mount_and_list()
        assert not unused
        # INBOX resynced from its saved listing (folders the first mount
        # had no time to list ahead may be listed in full).
        assert "INBOX" not in listed_in_full(sent), sent
        assert len(inodes) == (1 if offers else 0), inodes
        # Without hardlinks: nothing asked; Cyrus's saved listings (made
        # with ids) are not used, the others' (made without) are.
        sent, unused, _, inodes = mount_and_list(hardlinks="no")
        assert not any("EMAILID" in l for l in sent), sent
        assert bool(unused) == offers, unused
        assert ("INBOX" in listed_in_full(sent)) == offers, sent
        assert len(inodes) == (2 if offers else 0), inodes
    finally:
        if copy:
            with server.imap() as c:
                c.select(server.name("Archive"))
                c.uid("STORE", str(copy), "+FLAGS.SILENT", "(\\Deleted)")
                typ, data = c.uid("EXPUNGE", str(copy))
                assert typ == "OK", data


def test_names_carry_subject_slugs(server, mnt):
    names = inbox_files(server, mnt)
    uids = sorted(names)
    for uid, text in zip(uids, SUBJECTS.values()):
        slug = text.replace(" ", "_")
        assert names[uid] == f"{uid}-{slug}.eml", names
    path = os.path.join(mnt.mountpoint, server.path("Entwürfe"))
    assert [n.split("-", 1)[1] for n in files(path).values()] == ["Entwurf_für_Montag.eml"]


def test_xattrs_cold_then_warm(server, mnt):
    """Headers as attributes before the message was ever read (the cache
    cold: mailfs fetches the header fields) and after it was read."""
    names = inbox_files(server, mnt)
    inbox = os.path.join(mnt.mountpoint, "INBOX")
    for uid, text in zip(sorted(names), SUBJECTS.values()):
        path = os.path.join(inbox, names[uid])
        cold = xattrs(path)
        assert cold["user.mail.subject"] == text, cold
        assert cold["user.mail.from"] == "Alice Example <alice@example.org>", cold
        assert "<matrix-" in cold["user.mail.message-id"], cold
        with open(path, "rb") as f:
            f.read()
        assert xattrs(path) == cold


@pytest.mark.parametrize("query,key", [("subject:Deep", "Deep"), ("subject:für", "für"),
                                       ("-is:read from:alice", None)])
def test_search_matches_the_server(server, mnt, query, key):
    """.search answers as the server's own UID SEARCH does, in every folder,
    on every server (CHARSET UTF-8 with a literal for the non-ASCII word)."""
    expected = set()
    with server.imap() as c:
        for path in server.folders():
            typ, _ = c.select(corpus._q(corpus.mutf7_encode(path.replace("/", server.sep))),
                              readonly=True)
            if typ != "OK":
                continue
            if key is None:
                typ, data = c.uid("SEARCH", "UNSEEN", "FROM", "\"alice\"")
            else:
                c.literal = key.encode()
                typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")
            assert typ == "OK", data
            expected |= {(path, int(u)) for u in data[0].split()}
    assert expected, "the query must match something"
    top = os.path.join(mnt.mountpoint, ".search", query)
    found = set()
    for dirpath, _, names in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        for name in names:
            found.add((rel, int(name.split("-", 1)[0].split(".")[0])))
            assert os.stat(os.path.join(dirpath, name)).st_ino == \
                os.stat(os.path.join(mnt.mountpoint, rel, name)).st_ino
    assert found == expected
    assert ".search" not in os.listdir(mnt.mountpoint)


def test_parts_open_the_message_up(server, mnt):
    """.parts reads each server's BODYSTRUCTURE and fetches one part: the
    text converted to UTF-8, the attachment decoded under its RFC 2231 name."""
    folder = os.path.join(mnt.mountpoint, ".parts", server.path("Отправленные"))
    [msgdir] = [d for d in os.listdir(folder) if d.endswith("-Report_attached")]
    top = os.path.join(folder, msgdir)
    assert sorted(os.listdir(top)) == ["Bericht März.pdf", "headers", "parts", "text"]
    with open(os.path.join(top, "text"), "rb") as f:
        # The line end before a boundary belongs to the boundary (RFC 2046).
        assert f.read() == "Grüße, see the attached report.".encode()
    with open(os.path.join(top, "Bericht März.pdf"), "rb") as f:
        assert f.read() == REPORT_PDF
    assert os.stat(os.path.join(top, "Bericht März.pdf")).st_size == len(REPORT_PDF)
    with open(os.path.join(top, "headers"), encoding="utf-8") as f:
        assert "Subject: Report attached\n" in f.read()
    assert sorted(os.listdir(os.path.join(top, "parts"))) == ["1", "2"]
    assert xattrs(os.path.join(top, "Bericht März.pdf"))["user.mime.type"] == "application/pdf"
    assert ".parts" not in os.listdir(mnt.mountpoint)


def test_sizes_dates_bytes_and_no_seen_gained(server, mnt):
    before = {f: server.messages(f) for f in FOLDERS + ["INBOX"]}
    for folder, msgs in before.items():
        path = os.path.join(mnt.mountpoint, server.path(folder))
        names = files(path)
        assert set(names) == set(msgs), folder
        for uid, (size, date, flags, body) in msgs.items():
            st = os.stat(os.path.join(path, names[uid]))
            assert st.st_size == size, (folder, uid)
            assert int(st.st_mtime) == epoch(date), (folder, uid)
            with open(os.path.join(path, names[uid]), "rb") as f:
                assert f.read() == body, (folder, uid)
    after = {f: server.messages(f) for f in FOLDERS + ["INBOX"]}
    for folder in before:
        assert {u: v[2] for u, v in after[folder].items()} == \
            {u: v[2] for u, v in before[folder].items()}, f"flags changed in {folder}"


@pytest.mark.parametrize("flags", ["-a", "-aX"])
def test_rsync_twice_settles(server, mnt, workdir, flags):
    dest = os.path.join(workdir, f"rsync-{server.kind}{flags}")
    shutil.rmtree(dest, ignore_errors=True)
    try:
        for attempt in (1, 2):
            r = subprocess.run(["rsync", flags, "--stats", mnt.mountpoint + "/", dest + "/"],
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
        assert re.search(r"Number of regular files transferred: 0\b", r.stdout), r.stdout
        src = os.path.join(mnt.mountpoint, "INBOX")
        names = files(src)
        for name in names.values():
            with open(os.path.join(src, name), "rb") as a, \
                    open(os.path.join(dest, "INBOX", name), "rb") as b:
                assert a.read() == b.read(), name
        if flags == "-aX":
            name = names[sorted(names)[1]]
            assert xattrs(os.path.join(dest, "INBOX", name))["user.mail.subject"] == \
                "Grüße aus München"
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# -- changes, checked on the server -----------------------------------------------

def test_mkdir_rename_rmdir(server, mnt):
    top = os.path.join(mnt.mountpoint, server.path("Projects"))
    os.mkdir(top)
    assert server.path("Projects") in server.folders()
    os.rename(top, os.path.join(mnt.mountpoint, server.path("Projekte")))
    names = server.folders()
    assert server.path("Projekte") in names and server.path("Projects") not in names
    os.rmdir(os.path.join(mnt.mountpoint, server.path("Projekte")))
    assert server.path("Projekte") not in server.folders()


def test_mv_rm_cp_setfattr(server, mnt, workdir):
    archive = os.path.join(mnt.mountpoint, server.path("Archive"))
    deep = os.path.join(mnt.mountpoint, server.path("Archive/2024"))
    [(uid, name)] = files(archive).items()
    body = server.messages("Archive")[uid][3]
    # mv between folders: gone here, the same bytes there.
    subprocess.run(["mv", os.path.join(archive, name), deep + "/"], check=True)
    assert server.messages("Archive") == {}
    assert body in [v[3] for v in server.messages("Archive/2024").values()]
    # cp of a file into a folder: APPEND.
    src = os.path.join(workdir, f"new-{server.kind}.eml")
    with open(src, "wb") as f:
        f.write(message(30, "Copied in", b"copied\r\n"))
    subprocess.run(["cp", src, archive + "/"], check=True)
    body = message(30, "Copied in", b"copied\r\n")
    assert [v[3] for v in server.messages("Archive").values()] == [body]
    # setfattr of the flags.
    [(uid, name)] = files(archive).items()
    subprocess.run(["setfattr", "-n", "user.imap.flags", "-v", "\\Flagged",
                    os.path.join(archive, name)], check=True)
    assert "\\Flagged" in server.messages("Archive")[uid][2]
    # rm: moved to Trash; rm in Trash: expunged.
    os.unlink(os.path.join(archive, name))
    assert server.messages("Archive") == {}
    trash = os.path.join(mnt.mountpoint, server.path("Trash"))
    [(uid, (size, date, flags, data))] = server.messages("Trash").items()
    assert data == body
    os.unlink(os.path.join(trash, files(trash)[uid]))
    assert server.messages("Trash") == {}


def test_new_mail_in_inbox_is_pushed(server, mnt):
    """IDLE on INBOX: dovecot tells at once; Cyrus and Courier (as Debian
    ships it, IMAP_ENHANCEDIDLE=0) look for changes during IDLE every few
    seconds (imapidlepoll, IMAP_IDLE_TIMEOUT: unpacked_servers.py). refresh
    is an hour: only push explains the new name."""
    inbox = os.path.join(mnt.mountpoint, "INBOX")
    before = set(os.listdir(inbox))
    with server.imap() as c:
        c.append("INBOX", "()", None, NEW % (1, 1))
    new = wait_for(lambda: set(os.listdir(inbox)) - before, 30, "the new message")
    assert [n.split("-", 1)[1] for n in new] == ["Pushed_1.eml"]


def test_flag_change_and_expunge_in_inbox_are_pushed(server, mnt):
    """Another client flags one INBOX message and expunges another: both
    show without a refresh (an hour). dovecot and Cyrus push both; Courier
    as Debian ships it never pushes a flag change, but pushes the expunge,
    whose resync of INBOX brings the flag along."""
    inbox = os.path.join(mnt.mountpoint, "INBOX")
    names = files(inbox)
    a, b = sorted(names)[:2]

    def flags_of(uid):
        return subprocess.run(["getfattr", "-n", "user.imap.flags", "--only-values",
                               os.path.join(inbox, names[uid])],
                              capture_output=True, text=True).stdout

    assert "\\Flagged" not in flags_of(a)
    with server.imap() as c:
        c.select("INBOX")
        c.uid("STORE", str(a), "+FLAGS", "(\\Flagged)")
        c.uid("STORE", str(b), "+FLAGS", "(\\Deleted)")
        c.expunge()
    wait_for(lambda: names[b] not in os.listdir(inbox), 60, "the expunge to show")
    wait_for(lambda: "\\Flagged" in flags_of(a), 60, "the flag to show")


# -- the POP3 view of the same account (last: it takes messages from INBOX) --------

def pop3_messages(server):
    """{UIDL: exact bytes} through poplib (lines come back unstuffed, without CRLF)."""
    out = {}
    with server.server.pop3s(USER) as p:
        for line in p.uidl()[1]:
            n, uidl = line.split()
            lines = p.retr(int(n))[1]
            out[uidl.decode()] = b"\r\n".join(lines) + b"\r\n" if lines else b""
    return out


def pop3_count(server):
    """How many messages the maildrop holds (STAT). A wait asks this, not
    pop3_messages: while mailfs's QUIT commits its DELEs, a message the
    checking session listed can be gone before its RETR (Courier: "-ERR
    Can't open the message file - it's gone!")."""
    with server.server.pop3s(USER) as p:
        return p.stat()[0]


def test_pop3_listing_take_archive_dele(server, mailfs_bin, workdir):
    """The server's POP3: the listing is its UIDL list with the sizes it
    lists, cat takes a message (the exact bytes archived, then DELE), rm
    takes one without reading it."""
    # poplib refuses lines over 2048 bytes by default.
    poplib._MAXLINE = 1 << 20
    expected = pop3_messages(server)
    assert len(expected) >= 3
    base = os.path.join(workdir, f"pop3-{server.kind}")
    archive = os.path.join(base, "archive")
    m = Mount(mailfs_bin, server.server.url(USER, "pop3s"), os.path.join(base, "mnt"),
              {"ca_file": server.server.ca,
               "password_file": password_file(workdir, server.server, USER),
               "cache_dir": os.path.join(base, "cache"), "pop3_archive": archive},
              workdir)
    # The spool's state (what was taken) lives under XDG_STATE_HOME.
    m.env = dict(m.env, XDG_STATE_HOME=os.path.join(base, "state"))
    try:
        m.start()
        names = sorted(os.listdir(m.mountpoint))
        # These servers' UIDLs need no escaping: the names are UIDL.eml.
        assert names == sorted(u + ".eml" for u in expected)
        for name in names:
            path = os.path.join(m.mountpoint, name)
            data = expected[name[:-4]]
            assert os.stat(path).st_size == len(data), name
            # head reads the start without taking the message.
            r = subprocess.run(["head", "-c", "20", path], capture_output=True, check=True)
            assert r.stdout == data[:20]
        assert sorted(os.listdir(m.mountpoint)) == names
        # cat takes: the exact bytes, archived; rm takes without reading.
        first, second = names[0], names[1]
        r = subprocess.run(["cat", os.path.join(m.mountpoint, first)], capture_output=True,
                           check=True)
        assert r.stdout == expected[first[:-4]]
        os.unlink(os.path.join(m.mountpoint, second))
        left = os.listdir(m.mountpoint)
        assert first not in left and second not in left
        archived = sorted(open(os.path.join(archive, "new", f), "rb").read()
                          for f in os.listdir(os.path.join(archive, "new")))
        assert archived == sorted([expected[first[:-4]], expected[second[:-4]]])
        # DELE, committed by the QUIT after a few seconds of quiet.
        wait_for(lambda: pop3_count(server) == len(expected) - 2, 30,
                 "the DELEs on the server")
        assert sorted(pop3_messages(server)) == sorted(n[:-4] for n in names[2:])
        m.unmount()
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.kill()
        subprocess.run(["fusermount3", "-uz", m.mountpoint], capture_output=True)
