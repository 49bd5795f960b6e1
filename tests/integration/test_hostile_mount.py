# SPDX-License-Identifier: GPL-2.0-or-later
"""A real mailfs mount against a hostile IMAP server (tests/integration/hostile_imapd.py).

Each test mounts imap://tester@127.0.0.1:PORT (tls=none, one connection, no
IDLE, a short timeout) on a responder whose mailbox names, response codes,
sizes or unsolicited FETCH data are hostile, then walks and reads the mount
through child processes with a hard time bound. Whatever the server does:
the daemon does not crash or hang, every path stays under the mount, no name
is "." or ".." or holds a '/', file contents follow the bytes the server
sent, and the daemon exits 0 at unmount with no unexpected warning.
Run it also with an ASan build: pytest-3 <this file> --mailfs-build /work/build-asan.
"""

import calendar
import os
import re
import time
import subprocess
import threading

import pytest

from conftest import Mount, node_tag
from hostile_imapd import Message, Responder, hang_up, make_body, parse_astring

HARD = 30          # bound on any one walk or read of the mount
TLS_NONE = r"warning: tls=none"
HELLO = make_body("hello", 200)


@pytest.fixture
def password_file(workdir):
    path = os.path.join(workdir, "hostile-mount.password")
    with open(path, "w") as f:
        f.write("not-a-real-password\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture(autouse=True)
def no_responder_left():
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("hostile-imapd-")]
    assert not alive, f"responder threads still running: {alive}"


@pytest.fixture
def hostile_mount(mailfs_bin, workdir, password_file, request):
    """Factory: hostile_mount(responder, **options) -> started Mount on it.

    At teardown a mount still running is removed lazily and its daemon
    killed; the test itself unmounts and checks the exit (see finish())."""
    made = []

    def make(srv, **options):
        name = node_tag(request)
        opts = {"tls": "none", "password_file": password_file,
                "cache_dir": os.path.join(workdir, f"cache-hm-{name}-{len(made)}"),
                "connections": 1, "idle": "no", "timeout": 5, "log": "imap"}
        opts.update(options)
        opts = {k: v for k, v in opts.items() if v is not None}  # None: leave out
        m = Mount(mailfs_bin, f"imap://tester@127.0.0.1:{srv.port}",
                  os.path.join(workdir, f"mnt-hm-{name}-{len(made)}"), opts, workdir)
        made.append(m)
        m.start()
        return m

    yield make
    for m in made:
        if m.proc is not None and m.proc.poll() is None:
            m.kill()


def finish(m, srv, allowed=()):
    """Unmount: exit 0 in time, only expected warnings; the server saw no
    error, and one connection served the whole mount (nothing made the pool
    give up on it)."""
    m.unmount(allowed=(TLS_NONE,) + tuple(allowed))
    assert not srv.errors, srv.errors
    assert srv.connections == 1, f"{srv.connections} connections: {m.stderr()}"


def run(args, **kw):
    """A child touching the mount, bounded by HARD (a hang fails the test)."""
    try:
        return subprocess.run(args, capture_output=True, timeout=HARD, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} did not finish within {HARD}s: mailfs hangs")


def entries(path):
    """Every raw entry of one directory as readdir returns it, "." and ".." too
    (os.listdir would hide a second ".." from a broken name); None when the
    directory cannot be read."""
    r = run(["ls", "-a", "-U", "--zero", "--", path])
    if r.returncode != 0:
        return None
    return r.stdout.split(b"\0")[:-1]


def walk(mp, unreadable=None):
    """Walk the mount: every directory listed (raw), every path stat'ed.

    Returns {relative path: "d" or "f"}; directories that could not be read
    are added to the list unreadable (none allowed when it is None).
    Asserts what no server may break:
    each directory has exactly one "." and one ".."; no other name is "."
    or ".."; each name resolves under its directory and nowhere else."""
    real = os.path.realpath(mp)
    found = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        here = os.path.join(os.fsencode(mp), os.fsencode(rel)) if rel else os.fsencode(mp)
        names = entries(here)
        if names is None:
            assert unreadable is not None and rel, f"cannot list {here!r}"
            unreadable.append(rel)
            continue
        assert names.count(b".") == 1 and names.count(b"..") == 1, (here, names)
        for raw in names:
            if raw in (b".", b".."):
                continue
            assert raw and b"/" not in raw and b"\0" not in raw, (here, raw)
            path = os.path.join(os.fsencode(here), raw)
            st = run(["stat", "-c", "%F", "--", path])
            assert st.returncode == 0, f"stat {path!r}: {st.stderr!r}"
            assert os.path.realpath(path).startswith(os.fsencode(real) + b"/"), path
            sub = os.fsdecode(os.path.join(os.fsencode(rel), raw))
            if st.stdout.startswith(b"directory"):
                found[sub] = "d"
                todo.append(sub)
            else:
                found[sub] = "f"
    return found


def cat(path):
    r = run(["cat", "--", path])
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def size(path):
    r = run(["stat", "-c", "%s", "--", path])
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


def hang_up_on(name):
    """An EXAMINE handler: the usual answer, but hang up when name is opened."""
    def handler(server, conn, tag, args):
        if parse_astring(args)[0] == name:
            hang_up(server, conn, tag, args)
        return server.do_examine(conn, tag, args) + tag + b" OK done\r\n"
    return handler


def inbox(*msgs):
    return {b"INBOX": list(msgs) or [Message(1, HELLO)]}


# -- hostile mailbox names ---------------------------------------------------------

NAMES = {
    # id: (LIST lines, the names the walk must find besides INBOX and its
    #      message, mailbox names the client must EXAMINE as they are on the
    #      wire, warnings allowed)
    "dotdot": ([b'* LIST () "/" ..', b'* LIST () "/" "../x"'],
               {"%2E.": "d", "%2E./x": "d"}, [b"..", b"../x"], ()),
    "dot": ([b'* LIST () "/" .', b'* LIST () "/" "./y"'],
            {"%2E": "d", "%2E/y": "d"}, [b".", b"./y"], ()),
    "dotdot-nodelim": ([b'* LIST () NIL ..', b'* LIST () NIL "../x"'],
                       {"%2E.": "d", "%2E.%2Fx": "d"}, [b"..", b"../x"], ()),
    "slash-in-name": ([b'* LIST () "." "a/b"', b'* LIST () "." "a/b.c"', b'* LIST () "." a'],
                      {"a%2Fb": "d", "a%2Fb/c": "d", "a": "d"}, [b"a/b", b"a/b.c", b"a"], ()),
    "absolute": ([b'* LIST () "/" "/etc"'], {"%": "d", "%/etc": "d"}, [b"/etc"], ()),
    # "/.." split at '.': "/", "", "" (empty levels are "%").
    "absolute-dot": ([b'* LIST () "." "/etc"', b'* LIST () "." "/.."'],
                     {"%2Fetc": "d", "%2F": "d", "%2F/%": "d", "%2F/%/%": "d"},
                     [b"/etc", b"/.."], ()),
    # RFC 3501 allows no NUL in a literal (CHAR8): mailfs drops that LIST
    # line with a warning (so the name is hidden, not escaped as a%00b), and
    # "a" must stay "a", not be taken for the cut-off "a\0b".
    "nul-literal": ([b'* LIST () "/" {3}\r\na\x00b', b'* LIST () "/" a'],
                    {"a": "d"}, [b"a"], (r"warning: malformed LIST response skipped",)),
    # Names only a literal can carry: shown escaped, opened with a literal.
    "newline-literal": ([b'* LIST () "/" {3}\r\na\nb'], {"a%0Ab": "d"}, [b"a\nb"], ()),
    "crlf-literal": ([b'* LIST () "/" {4}\r\nc\r\nd'], {"c%0D%0Ad": "d"}, [b"c\r\nd"], ()),
    "high-bytes": ([b'* LIST () "/" {3}\r\n\xff\x80.', b'* LIST () "/" {5}\r\n\x1b[31m'],
                   {"%FF%80.": "d", "%1B[31m": "d"}, [b"\xff\x80.", b"\x1b[31m"], ()),
    "bad-mutf7": ([b'* LIST () "/" "&AGE-"', b'* LIST () "/" "x&Jjo"', b'* LIST () "/" "&-&-"',
                   b'* LIST () "/" "%41"', b'* LIST () "/" "&ZeVnLIqe-"',
                   b'* LIST () "/" "&AOQ-&APY-"'],
                  {"&AGE-": "d", "x&Jjo": "d", "&&": "d", "%2541": "d",
                   "\u65e5\u672c\u8a9e": "d", "&AOQ-&APY-": "d"},
                  [b"&AGE-", b"x&Jjo", b"&-&-", b"%41", b"&ZeVnLIqe-", b"&AOQ-&APY-"], ()),
    "message-like": ([b'* LIST () "/" "12-x.eml"', b'* LIST () "/" "INBOX/5.eml"'],
                     {"%312-x.eml": "d", "INBOX/%35.eml": "d"}, [b"12-x.eml", b"INBOX/5.eml"],
                     ()),
}

@pytest.mark.parametrize("case", list(NAMES))
def test_hostile_names(hostile_mount, case):
    """Walk safety: no escape, no "."/"..", no crash or hang, clean exit."""
    lines, expect, examined, allowed = NAMES[case]
    srv = Responder(folders=[b'* LIST () "/" INBOX'] + lines, mailboxes=inbox())
    with srv:
        m = hostile_mount(srv)
        unreadable = []
        found = walk(m.mountpoint, unreadable)
        assert found.get("INBOX") == "d", found
        assert found.get("INBOX/1-hello.eml") == "f", found
        rc, data, err = cat(os.path.join(m.mountpoint, "INBOX", "1-hello.eml"))
        assert rc == 0 and data == HELLO, err
        rest = {k: v for k, v in found.items() if not k.startswith("INBOX")
                or k.startswith("INBOX/%")}
        assert rest == expect, (found, m.stderr())
        # Each folder is opened under the server's own name, byte for byte.
        for name in examined:
            assert name in srv.examined, (name, srv.examined)
        # Every folder opens, also one whose name only a literal can carry.
        assert unreadable == [], (unreadable, srv.examined)
        finish(m, srv, allowed)


def test_server_name_escaped_in_log(hostile_mount):
    """A mailbox name reaches stderr only escaped (no terminal control, no 8-bit)."""
    evil = b"\x1b]0;owned\x07\x1b[2J"
    srv = Responder(folders=[b'* LIST () "/" INBOX',
                             b'* LIST () "/" {%d}\r\n%s' % (len(evil), evil)],
                    mailboxes=inbox(), handlers={"EXAMINE": hang_up_on(evil)})
    with srv:
        m = hostile_mount(srv, log=None)  # the warning, not the debug log
        found = walk(m.mountpoint, [])
        assert "%1B]0;owned%07%1B[2J" in found, found
        m.unmount(allowed=(TLS_NONE, r"warning: .*(connection|closed|EOF)"))
    with open(m.stderr_path, "rb") as f:
        err = f.read()
    assert b"\x1b" not in err and b"\x07" not in err, err


# -- a response code mailfs does not know ------------------------------------------

@pytest.mark.parametrize("where", ["LIST", "EXAMINE", "UID FETCH", "AUTHENTICATE", "ID",
                                   "untagged"])
def test_unknown_response_code(hostile_mount, where):
    code = "[XFOO bar baz] done"
    if where == "untagged":
        srv = Responder(folders=[b'* LIST () "/" INBOX'], mailboxes=inbox(),
                        before={w: b"* OK [XFOO bar baz] hmm\r\n* NO [XBAR (1 2) \"q\"] eh\r\n"
                                for w in ("LIST", "EXAMINE", "UID FETCH", "ID")})
    else:
        srv = Responder(folders=[b'* LIST () "/" INBOX'], mailboxes=inbox(),
                        ok_text={where: code})
    with srv:
        m = hostile_mount(srv)
        assert walk(m.mountpoint) == {"INBOX": "d", "INBOX/1-hello.eml": "f"}
        rc, data, err = cat(os.path.join(m.mountpoint, "INBOX", "1-hello.eml"))
        assert rc == 0 and data == HELLO, err
        # "* NO" is a server warning mailfs may pass on; nothing else.
        finish(m, srv, allowed=(r"warning: .*(XBAR|eh)",))


# -- RFC822.SIZE that lies -----------------------------------------------------------

SIZES = [
    # (claimed RFC822.SIZE, true length of BODY[])
    (5000, 300),      # smaller than claimed
    (4097, 4095),     # two bytes short of the claim, near a page boundary
    (50000, 9000),    # many chunks fewer
    (150, 0),         # claimed full, sent empty
    (4096, 4097),     # longer than claimed
    (3000, 20000),    # much longer
    (0, 150),         # claimed empty
]


def size_id(p):
    return "%d-%d" % tuple(p.values if hasattr(p, "values") else p)


@pytest.mark.parametrize("claimed,true", SIZES, ids=[size_id(p) for p in SIZES])
def test_size_lies(hostile_mount, claimed, true):
    """The file's size follows the bytes, whatever RFC822.SIZE said.

    A wrong size is learnt when the file is opened, and the file is then
    served without the kernel's size limit: no cut, no NUL padding."""
    body = make_body("sized", true) if true else b""
    srv = Responder(folders=[b'* LIST () "/" INBOX'],
                    mailboxes=inbox(Message(1, body, size=claimed, subject="sized")))
    with srv:
        m = hostile_mount(srv)
        path = os.path.join(m.mountpoint, "INBOX", "1-sized.eml")
        assert walk(m.mountpoint) == {"INBOX": "d", "INBOX/1-sized.eml": "f"}
        assert size(path) == claimed  # the hint, before any byte is fetched
        rc, data, err = cat(path)
        assert rc == 0, err
        assert (len(data), data == body) == (true, True), (
            f"cat gave {len(data)} bytes of {true}; beyond: {data[true:][:16]!r}; "
            f"a prefix of the body: {body.startswith(data)}")
        deadline = time.monotonic() + 10
        while size(path) != true and time.monotonic() < deadline:
            time.sleep(0.05)
        assert size(path) == true, "stat after the read must show the true size"
        # A second read (from the cache, with the corrected size) agrees.
        rc, again, err = cat(path)
        assert rc == 0 and again == body, (len(again), err)
        finish(m, srv)


RACES = [
    # (claimed, true, messages): one short answer corrects the size while
    # the kernel's first read of the file is under way.
    (100, 300, 12),
    (5000, 300, 100),
    (4097, 4096, 100),
    (150, 0, 100),
]


@pytest.mark.parametrize("claimed,true,count", RACES,
                         ids=["%d-%d" % tuple(getattr(p, "values", p)[:2]) for p in RACES])
def test_size_first_read(hostile_mount, claimed, true, count):
    """The FIRST cat of each of count messages (RFC822.SIZE claimed, true bytes
    sent) already gives exactly the server's bytes, and stat right after the
    true size."""
    bodies = {uid: make_body(f"m{uid}", true) if true else b"" for uid in range(1, count + 1)}
    srv = Responder(folders=[b'* LIST () "/" INBOX'],
                    mailboxes=inbox(*(Message(u, b, size=claimed, subject=f"m{u}")
                                      for u, b in bodies.items())))
    with srv:
        m = hostile_mount(srv)
        assert len(walk(m.mountpoint)) == count + 1
        wrong, stale = [], []
        for uid, body in bodies.items():
            path = os.path.join(m.mountpoint, "INBOX", f"{uid}-m{uid}.eml")
            assert size(path) == claimed
            rc, data, err = cat(path)
            assert rc == 0, err
            if data != body:
                wrong.append((uid, len(data), data[true:][:4]))
            # The kernel's cached size is invalidated from the notify thread,
            # a moment after the read: give it that moment.
            deadline = time.monotonic() + 10
            while size(path) != true and time.monotonic() < deadline:
                time.sleep(0.05)
            if size(path) != true:
                stale.append(uid)
        finish(m, srv)
    assert not wrong and not stale, (
        f"first reads not the server's {true} bytes (uid, length, bytes beyond): {wrong}; "
        f"stat after the read not {true}: {stale}")


# -- unsolicited FETCH data ------------------------------------------------------------

def fetch_with_body(seq, uid, data, origin=b""):
    return b"* %d FETCH (UID %d BODY[]%s {%d}\r\n%s)\r\n" % (seq, uid, origin, len(data), data)


EVIL = make_body("evil", 500)


@pytest.mark.parametrize("case", [
    "listing-unknown-uid", "listing-known-uid", "listing-no-uid",
    "read-other-uid", "read-unknown-uid", "read-other-origin", "read-other-uid-first",
])
def test_unsolicited_fetch(hostile_mount, case):
    one, two = make_body("one", 300), make_body("two", 5000)
    kw = {}
    if case == "listing-unknown-uid":
        kw["after_listing"] = fetch_with_body(9, 77, EVIL)
    elif case == "listing-known-uid":
        kw["after_listing"] = fetch_with_body(2, 2, EVIL) + fetch_with_body(1, 1, EVIL, b"<0>")
    elif case == "listing-no-uid":
        kw["after_listing"] = b"* 2 FETCH (BODY[] {%d}\r\n%s)\r\n" % (len(EVIL), EVIL)
    elif case == "read-other-uid":
        kw["after_body"] = {1: fetch_with_body(2, 2, EVIL, b"<0>")}
    elif case == "read-unknown-uid":
        kw["after_body"] = {1: fetch_with_body(3, 77, EVIL, b"<0>")}
    elif case == "read-other-uid-first":
        # Before the answer to every UID FETCH, the listing's too (harmless there).
        kw["before"] = {"UID FETCH": fetch_with_body(2, 2, EVIL, b"<0>")}
    elif case == "read-other-origin":
        kw["after_body"] = {1: fetch_with_body(1, 1, EVIL, b"<9000>")}
    srv = Responder(folders=[b'* LIST () "/" INBOX'],
                    mailboxes=inbox(Message(1, one, subject="one"), Message(2, two, subject="two")),
                    **kw)
    with srv:
        m = hostile_mount(srv)
        assert walk(m.mountpoint) == {"INBOX": "d", "INBOX/1-one.eml": "f",
                                      "INBOX/2-two.eml": "f"}
        for name, body in (("1-one.eml", one), ("2-two.eml", two)):
            path = os.path.join(m.mountpoint, "INBOX", name)
            rc, data, err = cat(path)
            assert rc == 0, err
            assert data == body, f"{name}: {len(data)} bytes, not the server's {len(body)}"
            assert size(path) == len(body)
        finish(m, srv)


def test_unsolicited_fetch_cache_after_remount(hostile_mount, workdir):
    one, two = make_body("one", 300), make_body("two", 5000)
    cache = os.path.join(workdir, "cache-hm-poison")
    path = ["INBOX", "1-one.eml"]
    hostile = Responder(folders=[b'* LIST () "/" INBOX'],
                        mailboxes=inbox(Message(1, one, subject="one"),
                                        Message(2, two, subject="two")),
                        before={"UID FETCH": fetch_with_body(2, 2, EVIL, b"<0>")})
    with hostile:
        m = hostile_mount(hostile, cache_dir=cache)
        cat(os.path.join(m.mountpoint, *path))
        finish(m, hostile)
    honest = Responder(folders=[b'* LIST () "/" INBOX'],
                       mailboxes=inbox(Message(1, one, subject="one"),
                                       Message(2, two, subject="two")))
    with honest:
        m = hostile_mount(honest, cache_dir=cache)
        rc, data, err = cat(os.path.join(m.mountpoint, *path))
        finish(m, honest)
    assert rc == 0, err
    assert data == one, f"after the remount: {data[:24]!r}..., fetches {honest.body_fetches}"


# -- a QRESYNC server that forgets what it expunged ------------------------------------

def test_resync_that_misses_an_expunge_is_mended(hostile_mount, workdir):
    """iCloud is known for a QRESYNC that misbehaves: here HIGHESTMODSEQ moves
    on but no VANISHED comes for a message that went while unmounted. The
    message count after the resync disagrees with EXISTS, and the folder is
    listed in full: the deleted message does not linger in the mount."""
    caps = "IMAP4rev1 AUTH=PLAIN SASL-IR ID ENABLE CONDSTORE QRESYNC"
    state = {"modseq": 5}

    def enable(server, conn, tag, args):
        return b"* ENABLED QRESYNC\r\n%s OK enabled\r\n" % tag

    def examine(server, conn, tag, args):
        head = server.do_examine(conn, tag, args)
        return head + b"* OK [HIGHESTMODSEQ %d] ok\r\n%s OK [READ-ONLY] done\r\n" % (
            state["modseq"], tag)

    msgs = [Message(1, make_body("one", 100), subject="one"),
            Message(2, make_body("two", 100), subject="two"),
            Message(3, make_body("three", 100), subject="three")]
    cache = os.path.join(workdir, "cache-hm-qresync-liar")
    for round_ in (1, 2):
        srv = Responder(folders=[b'* LIST () "/" INBOX'], mailboxes={b"INBOX": list(msgs)},
                        caps=caps, handlers={"ENABLE": enable, "EXAMINE": examine})
        with srv:
            m = hostile_mount(srv, cache_dir=cache)
            names = sorted(os.listdir(os.path.join(m.mountpoint, "INBOX")))
            want = sorted(f"{x.uid}-{x.subject}.eml" for x in msgs)
            assert names == want, (round_, names)
            fetches = [c for c in srv.commands() if c.startswith("UID FETCH 1:* ")]
            if round_ == 2:
                # It did try the cheap way first, and had to list in full.
                assert any("QRESYNC (" in c for c in srv.commands()), srv.commands()
                assert len(fetches) == 1, srv.commands()
                assert "listing it in full" in m.stderr()
            finish(m, srv)
        # While unmounted: message 2 goes, HIGHESTMODSEQ moves, no VANISHED.
        msgs.pop(1)
        state["modseq"] += 1


# -- message identities (OBJECTID's EMAILID, Gmail's X-GM-MSGID) --------------------

OBJID_CASES = {
    # caps beyond the base, hardlinks, the item the listing must ask for
    "gmail": ("X-GM-EXT-1", None, "X-GM-MSGID"),
    "objectid": ("OBJECTID", None, "EMAILID"),
    "both": ("X-GM-EXT-1 OBJECTID", None, "EMAILID"),
    "hardlinks-off": ("X-GM-EXT-1 OBJECTID", "no", None),
}
# What each message's identity is answered with: good, too long, outside the
# grammar, NIL, overflowing, not a number.
HOSTILE_IDS = [b"EMAILID (M" + b"a" * 300 + b")", b"EMAILID (M.x/../y)", b"EMAILID NIL",
               b"X-GM-MSGID 99999999999999999999999", b"X-GM-MSGID -1",
               b"X-GM-MSGID 1278455344230334865 EMAILID (Mok_1-2)"]


@pytest.mark.parametrize("case", list(OBJID_CASES))
def test_object_ids_asked_where_offered(hostile_mount, case):
    """The listing asks for the identity the server offers (EMAILID first),
    in the same command; whatever comes back, the folder lists and reads as
    without it."""
    extra, hardlinks, item = OBJID_CASES[case]
    msgs = [Message(i + 1, make_body(f"m{i}", 100), subject=f"m{i}")
            for i in range(len(HOSTILE_IDS))]

    def uid_fetch(server, conn, tag, args):
        out = server.do_uid_fetch(conn, tag, args)
        if b"RFC822.SIZE" in args:
            out = re.sub(rb"\* (\d+) FETCH \(UID (\d+) ",
                         lambda mo: mo.group(0) + HOSTILE_IDS[int(mo.group(2)) - 1] + b" ", out)
        return out + b"%s OK done\r\n" % tag

    srv = Responder(folders=[b'* LIST () "/" INBOX'], mailboxes={b"INBOX": msgs},
                    caps="IMAP4rev1 AUTH=PLAIN SASL-IR ID " + extra,
                    handlers={"UID FETCH": uid_fetch})
    with srv:
        m = hostile_mount(srv, hardlinks=hardlinks)
        names = sorted(os.listdir(os.path.join(m.mountpoint, "INBOX")))
        assert names == sorted(f"{x.uid}-{x.subject}.eml" for x in msgs), names
        rc, data, err = cat(os.path.join(m.mountpoint, "INBOX", names[0]))
        assert rc == 0 and data == msgs[0].body, err
        listing = [c for c in srv.commands() if c.startswith("UID FETCH 1:* ")]
        assert len(listing) == 1, srv.commands()
        for word in ("EMAILID", "X-GM-MSGID"):
            assert (word in listing[0]) == (word == item), listing
        finish(m, srv)


# -- a first listing that breaks half way ---------------------------------------------

@pytest.mark.parametrize("breaks", [1, 99], ids=["once", "always"])
def test_a_streamed_listing_that_breaks_is_taken_back(hostile_mount, workdir, breaks):
    """The server names the newest arrival first (ESORT, SEARCHRES), so the
    stat is answered while the listing streams; then it hangs up half way
    through the listing. What had arrived is not shown as the folder: the
    readdir lists it again and gives every message once, in UID order (the
    next try succeeds), or fails with EIO (every try breaks)."""
    caps = "IMAP4rev1 AUTH=PLAIN SASL-IR ID ESORT SEARCHRES"
    newest, n = "05-Feb-2024 10:00:00 +0000", 3000
    msgs = [Message(uid, HELLO, subject=f"m{uid}", date="01-Jan-2020 00:00:00 +0000")
            for uid in range(1, n + 1)]
    msgs[1999].date = newest
    broken = []

    # The EXAMINE's and the SORT's answers are held back and go out in one
    # write with the date's: one read of the client takes in all three.
    def examine(server, conn, tag, args):
        conn.held = server.do_examine(conn, tag, args) + b"%s OK done\r\n" % tag
        return b""

    def sort(server, conn, tag, args):
        conn.held += b'* ESEARCH (TAG "%s") UID MIN 2000\r\n%s OK done\r\n' % (tag, tag)
        return b""

    def fetch(server, conn, tag, args):
        spec = args.split(b" ", 1)[0]
        held, conn.held = getattr(conn, "held", b""), b""
        if spec == b"$":
            return (held + b'* 2000 FETCH (UID 2000 INTERNALDATE "%s")\r\n%s OK done\r\n'
                    % (newest.encode(), tag))
        out = held + server.do_uid_fetch(conn, tag, args)
        if spec == b"1:*" and len(broken) < breaks:
            broken.append(spec)
            conn.send(out[:len(out) // 2])
            hang_up(server, conn, tag, args)
        return out + b"%s OK done\r\n" % tag

    srv = Responder(folders=[b'* LIST () "/" INBOX'], mailboxes={b"INBOX": msgs}, caps=caps,
                    handlers={"EXAMINE": examine, "UID SORT": sort, "UID FETCH": fetch})
    with srv:
        m = hostile_mount(srv, cache_dir=os.path.join(workdir, f"cache-hm-stream-{breaks}"))
        inbox = os.path.join(m.mountpoint, "INBOX")
        assert os.stat(inbox).st_mtime == calendar.timegm((2024, 2, 5, 10, 0, 0))
        r = run(["ls", "-U", inbox])
        if breaks == 1:
            assert r.returncode == 0, r.stderr
            uids = [int(name.split(b"-", 1)[0]) for name in r.stdout.split()]
            assert uids == list(range(1, n + 1))
        else:
            assert r.returncode != 0 and b"Input/output error" in r.stderr, r
        assert any(c.startswith("UID SORT RETURN (SAVE MIN)") for c in srv.commands())
        m.unmount(allowed=(TLS_NONE, r"warning: .*INBOX"))


def test_a_stat_is_answered_from_push_s_first_listing(hostile_mount):
    """Push lists INBOX when it connects at mount, asking for the newest
    arrival first as a stat does. A stat made meanwhile, even before the
    date is in, is answered as soon as it is (the folder then reads as
    listed), not after the listing's last message: here the server holds
    the date until the stat was made, and the listing's second half until
    the stat has returned. The stat makes no listing of its own, and `ls`
    then gives every message once, in order."""
    caps = "IMAP4rev1 AUTH=PLAIN SASL-IR ID ESORT SEARCHRES"
    newest, n = "05-Feb-2024 10:00:00 +0000", 3000
    msgs = [Message(uid, HELLO, subject=f"m{uid}", date="01-Jan-2020 00:00:00 +0000")
            for uid in range(1, n + 1)]
    msgs[1999].date = newest
    date_asked, stat_made, stat_done = threading.Event(), threading.Event(), threading.Event()

    def sort(server, conn, tag, args):
        return b'* ESEARCH (TAG "%s") UID MIN 2000\r\n%s OK done\r\n' % (tag, tag)

    def fetch(server, conn, tag, args):
        spec = args.split(b" ", 1)[0]
        if spec == b"$":
            date_asked.set()
            stat_made.wait(HARD)
            return (b'* 2000 FETCH (UID 2000 INTERNALDATE "%s")\r\n%s OK done\r\n'
                    % (newest.encode(), tag))
        out = server.do_uid_fetch(conn, tag, args)
        if spec == b"1:*":
            cut = out.index(b"* 1501 FETCH ")
            conn.send(out[:cut])
            stat_done.wait(HARD)
            out = out[cut:]
        return out + b"%s OK done\r\n" % tag

    srv = Responder(folders=[b'* LIST () "/" INBOX'], mailboxes={b"INBOX": msgs}, caps=caps,
                    handlers={"UID SORT": sort, "UID FETCH": fetch})
    with srv:
        m = hostile_mount(srv, idle="yes", timeout=HARD + 10)
        inbox = os.path.join(m.mountpoint, "INBOX")
        try:
            assert date_asked.wait(HARD), f"push did not list INBOX: {srv.commands()}"
            stat = subprocess.Popen(["stat", "-c", "%Y", inbox], stdout=subprocess.PIPE)
            time.sleep(0.5)  # the stat reaches the daemon, which finds INBOX being listed
            stat_made.set()
            try:
                out, _ = stat.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                stat.kill()
                stat.wait()
                pytest.fail("the stat waited for the rest of push's listing")
        finally:
            stat_made.set()
            stat_done.set()
        assert stat.returncode == 0 and int(out) == calendar.timegm((2024, 2, 5, 10, 0, 0))
        r = run(["ls", "-U", inbox])
        assert r.returncode == 0, r.stderr
        assert [int(name.split(b"-", 1)[0]) for name in r.stdout.split()] == list(range(1, n + 1))
        assert sum(c.startswith("UID FETCH 1:* ") for c in srv.commands()) == 1, srv.commands()
        assert sum(c.startswith("UID SORT RETURN (SAVE MIN)") for c in srv.commands()) == 1
        m.unmount(allowed=(TLS_NONE,))
