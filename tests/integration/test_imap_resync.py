"""Listings kept up to date cheaply, and kept across mounts (mailfs(1) CACHING AND FRESHNESS,
"Freshness"; issue: live resync and persistent index).

Each test runs against three private dovecots that differ in what they
advertise after login: everything (QRESYNC and CONDSTORE), CONDSTORE without
QRESYNC (Gmail), and neither (Exchange Online, Courier). The mount must show
exactly what the server holds in every case; the status counters tell which
way it got there (listings_full: UID FETCH 1:* of everything; listings_resynced:
only what changed).
"""
import concurrent.futures
import imaplib
import os
import pwd
import re
import subprocess
import time

import pytest

import mailserver
from conftest import Mount, password_file

# dovecot 2.3's post-login capabilities, less what a mode takes away.
BASE_CAPS = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
             "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "
             "CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 ESEARCH "
             "ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE LITERAL+ "
             "SPECIAL-USE")
MODES = {
    "qresync": "",
    "condstore": f"imap_capability = {BASE_CAPS} CONDSTORE",
    "plain": f"imap_capability = {BASE_CAPS}",
}
BIG = 10000
SMALL = 20


def write_maildir(server, user, folder, n, start=0):
    """n small messages straight into dovecot's Maildir (APPEND of 10,000 is slow)."""
    path = os.path.join(server.base, "mail", user, folder)
    dovecot = pwd.getpwnam("dovecot")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
        os.chown(os.path.join(path, sub), dovecot.pw_uid, dovecot.pw_gid)
    os.chown(path, dovecot.pw_uid, dovecot.pw_gid)
    for i in range(start, start + n):
        name = os.path.join(path, "cur", f"1700000000.M{i}P1.mailfs:2,S")
        with open(name, "wb") as f:
            f.write(b"From: a@example.org\r\nTo: b@example.org\r\n"
                    b"Date: Mon, 6 Nov 2023 10:00:00 +0000\r\n"
                    b"Subject: message %d\r\n\r\nbody %d\r\n" % (i, i))
        os.chown(name, dovecot.pw_uid, dovecot.pw_gid)


@pytest.fixture(scope="module", params=list(MODES))
def server(request, workdir):
    mode = request.param
    s = mailserver.Dovecot(os.path.join(workdir, f"dovecot-resync-{mode}"),
                           imap_extra=MODES[mode])
    s.start()
    try:
        s.mode = mode
        write_maildir(s, "alice", "Big", BIG)
        write_maildir(s, "alice", "Small", SMALL)
        write_maildir(s, "alice", "Work", 5)
        with s.imaps("alice") as c:
            for box in ("Big", "Small", "Work"):
                typ, _ = c.select(box)  # dovecot indexes the new files now
                assert typ == "OK"
            caps = c.capability()[1][0].decode().upper().split()
        # The mode is what the server says it is.
        assert ("QRESYNC" in caps) == (mode == "qresync")
        assert ("CONDSTORE" in caps) == (mode != "plain")
        yield s
    finally:
        s.stop()


class Mounts:
    def __init__(self, binary, server, workdir, name):
        self.binary, self.server, self.workdir = binary, server, workdir
        self.cache = os.path.join(workdir, f"cache-resync-{server.mode}-{name}")
        self.mp = os.path.join(workdir, f"mnt-resync-{server.mode}-{name}")
        self.current = None

    def mount(self, **options):
        opts = {"ca_file": self.server.ca, "idle": "off", "refresh": 3600,
                "password_file": password_file(self.workdir, self.server, "alice"),
                "cache_dir": self.cache}
        opts.update(options)
        self.current = Mount(self.binary, self.server.url("alice"), self.mp, opts, self.workdir)
        self.current.start()
        return self.current

    def unmount(self, allowed=()):
        m, self.current = self.current, None
        m.unmount(allowed=allowed)

    def close(self):
        if self.current:
            self.current.kill()


@pytest.fixture
def mounts(mailfs_bin, server, workdir, request):
    made = []

    def make(name):
        m = Mounts(mailfs_bin, server, workdir, name)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def status(mp):
    out = subprocess.run(["getfattr", "--only-values", "-n", "user.mailfs.status", mp],
                         capture_output=True, text=True, check=True).stdout
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def counter(mp, name):
    return int(status(mp)[name])


def server_listing(server, box):
    """{uid: (subject, flags)} as the server has it."""
    with server.imaps("alice") as c:
        c.select(box, readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))
            flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1)
            subject = item[1].decode().split(":", 1)[1].strip()
            out[uid] = (subject, set(f for f in flags.split() if f != "\\Recent"))
        return out


def mount_listing(mp, box):
    """{uid: file name} of a folder of the mount."""
    names = os.listdir(os.path.join(mp, box))
    return {int(n.split("-", 1)[0].split(".", 1)[0]): n for n in names if n.endswith(".eml")}


def flags_of(path):
    out = subprocess.run(["getfattr", "--only-values", "-n", "user.imap.flags", path],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def assert_same(mp, server, box, check_flags=()):
    want = server_listing(server, box)
    got = mount_listing(mp, box)
    assert sorted(got) == sorted(want)
    for uid, name in got.items():
        assert name == f"{uid}-{want[uid][0].replace(' ', '_')}.eml"
    for uid in check_flags:
        assert flags_of(os.path.join(mp, box, got[uid])) == want[uid][1], uid


def change_behind(server, box):
    """Another client: append two, expunge one, flag one. Returns the UIDs touched."""
    with server.imaps("alice") as c:
        c.select(box)
        typ, data = c.uid("SEARCH", None, "ALL")
        uids = [int(u) for u in data[0].split()]
        for i in range(2):
            msg = (b"From: x@example.org\r\nSubject: added %d %d\r\n\r\nnew\r\n"
                   % (i, time.monotonic_ns()))
            assert c.append(box, None, None, msg)[0] == "OK"
        gone, flagged = uids[1], uids[2]
        assert c.uid("STORE", str(flagged), "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert c.uid("STORE", str(gone), "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert c.uid("EXPUNGE", str(gone))[0] == "OK"
    return gone, flagged


def test_changes_by_others_are_resynced_not_relisted(mounts, server):
    ms = mounts("live")
    m = ms.mount(refresh=1)
    assert_same(m.mountpoint, server, "Work")
    full = counter(m.mountpoint, "listings_full")
    gone, flagged = change_behind(server, "Work")
    time.sleep(1.5)  # older than `refresh`: the next readdir brings it up to date
    got = mount_listing(m.mountpoint, "Work")
    assert gone not in got
    assert_same(m.mountpoint, server, "Work", check_flags=[flagged])
    assert counter(m.mountpoint, "listings_full") == full
    assert counter(m.mountpoint, "listings_resynced") >= 1
    ms.unmount()


def test_remount_uses_the_saved_listing(mounts, server):
    ms = mounts("saved")
    m = ms.mount()
    before = mount_listing(m.mountpoint, "Work")
    ms.unmount()
    gone, flagged = change_behind(server, "Work")
    m = ms.mount()
    after = mount_listing(m.mountpoint, "Work")
    assert gone in before and gone not in after
    assert_same(m.mountpoint, server, "Work", check_flags=[flagged])
    # Names of the messages that stayed are the same files.
    assert all(after[u] == before[u] for u in after if u in before)
    st = status(m.mountpoint)
    assert int(st["listings_full"]) == 0, st
    # Bytes of a message listed from the saved listing are the server's.
    uid = max(after)
    with server.imaps("alice") as c:
        c.select("Work", readonly=True)
        body = c.uid("FETCH", str(uid), "(BODY.PEEK[])")[1][0][1]
    with open(os.path.join(m.mountpoint, "Work", after[uid]), "rb") as f:
        assert f.read() == body
    ms.unmount()


def remount_commands(ms, box):
    """Commands a second mount sends to list box, whose listing the first mount
    saved; and whether it shows the same files (names, sizes, dates) as the
    first."""
    def ls(m):
        out = subprocess.run(["ls", "-l", "--time-style=+%s", os.path.join(m.mountpoint, box)],
                             check=True, capture_output=True, text=True).stdout
        return sorted(line.split(None, 4)[4] for line in out.splitlines()[1:])

    m = ms.mount()
    first = ls(m)
    ms.unmount()
    m = ms.mount()
    base = counter(m.mountpoint, "commands_sent")
    again = ls(m)
    st = status(m.mountpoint)
    ms.unmount()
    assert again == first
    return int(st["commands_sent"]) - base, int(st["listings_full"]), len(again)


def test_remount_of_unchanged_large_folder_costs_no_listing(mounts, server):
    """A saved listing of 10,000 messages comes back whole (read into the tree
    in chunks of 4,096), with the same names, sizes and dates."""
    big_cmds, big_full, big_n = remount_commands(mounts("big"), "Big")
    small_cmds, small_full, small_n = remount_commands(mounts("small"), "Small")
    assert (big_n, small_n) == (BIG, SMALL)
    assert big_full == small_full == 0
    # Independent of the message count: the same commands for 10,000 as for 20.
    assert big_cmds == small_cmds, (big_cmds, small_cmds)


def test_uidvalidity_change_while_unmounted(mounts, server):
    write_maildir(server, "alice", "Renewed", 3, start=100)
    ms = mounts("uidvalidity")
    m = ms.mount()
    old = mount_listing(m.mountpoint, "Renewed")
    assert len(old) == 3
    for name in old.values():
        with open(os.path.join(m.mountpoint, "Renewed", name), "rb") as f:
            f.read()  # cached now: must not come back after the change
    ms.unmount()
    with server.imaps("alice") as c:
        assert c.delete("Renewed")[0] == "OK"
        assert c.create("Renewed")[0] == "OK"
        for i in range(2):
            assert c.append("Renewed", None, None,
                            b"Subject: reborn %d\r\n\r\nother bytes %d\r\n" % (i, i))[0] == "OK"
    m = ms.mount()
    assert_same(m.mountpoint, server, "Renewed")
    with server.imaps("alice") as c:
        c.select("Renewed", readonly=True)
        for uid, name in mount_listing(m.mountpoint, "Renewed").items():
            body = c.uid("FETCH", str(uid), "(BODY.PEEK[])")[1][0][1]
            with open(os.path.join(m.mountpoint, "Renewed", name), "rb") as f:
                assert f.read() == body
    ms.unmount()


def test_damaged_saved_listing_is_not_used(mounts, server):
    ms = mounts("damaged")
    m = ms.mount()
    mount_listing(m.mountpoint, "Work")
    ms.unmount()
    listings = os.path.join(ms.cache, "listings")
    files = os.listdir(listings)
    assert files and all(f.endswith(".idx") for f in files)
    for f in files:
        p = os.path.join(listings, f)
        data = bytearray(open(p, "rb").read())
        with open(p, "wb") as out:
            out.write(data[: len(data) // 2])
    m = ms.mount()
    assert_same(m.mountpoint, server, "Work")
    assert counter(m.mountpoint, "listings_full") >= 1
    ms.unmount(allowed=[r"warning: saved listing not used"])


WALK = [f"Walk/f{i}" for i in range(1, 9)]


def make_walk_folders(server):
    """Walk/f1..f8, three messages each."""
    with server.imaps("alice") as c:
        for box in WALK:
            assert c.create(box)[0] == "OK"
            for i in range(3):
                assert c.append(box, None, None,
                                b"Subject: %s %d\r\n\r\nbody\r\n" % (box.encode(), i))[0] == "OK"


def recreate(server, box, n, delete=True):
    """Delete box and make it again with n other messages: another UIDVALIDITY."""
    with server.imaps("alice") as c:
        if delete:
            assert c.delete(box)[0] == "OK"
        assert c.create(box)[0] == "OK"
        for i in range(n):
            assert c.append(box, None, None, b"Subject: again %d\r\n\r\nnew\r\n" % i)[0] == "OK"


COMMAND = re.compile(r'^C: (A\d+) (\S+)(?: "?([^" ]+)"?)?(.*)$')


def trace_commands(stderr):
    """Per connection, the commands sent [(tag, verb, mailbox or arg)] and, for
    each, how many SELECT/EXAMINEs of that connection were unanswered when it
    went out (itself included)."""
    out = {}
    outstanding = {}
    for line in stderr.splitlines():
        m = re.match(r"^mailfs: imap: [\d:.]+ (imap#\d+) ([CS]: .*)$", line)
        if not m:
            continue
        conn, text = m.groups()
        sel = outstanding.setdefault(conn, set())
        c = COMMAND.match(text)
        if c:
            tag, verb, arg = c.group(1), c.group(2).upper(), c.group(3)
            if verb in ("SELECT", "EXAMINE"):
                sel.add(tag)
            out.setdefault(conn, []).append((tag, verb, arg, len(sel), text))
            continue
        a = re.match(r"^S: (A\d+)\b", text)
        if a:
            sel.discard(a.group(1))
    return out


def per_folder(commands):
    """{folder: [commands sent for it]}: a SELECT/EXAMINE and the FETCHes behind
    it on the same connection."""
    out = {}
    for cmds in commands.values():
        box = None
        for tag, verb, arg, _, text in cmds:
            if verb in ("SELECT", "EXAMINE"):
                box = arg
                out.setdefault(box, []).append(verb)
            elif verb == "UID" and box:
                # A stat's own listing asks for the newest arrival first (ESORT).
                out[box].append("SORT" if text.split()[3] == "SORT"
                                else "NEWEST" if "UID FETCH $ " in text else "UID")
            else:
                box = None
    return out


def walk(mp, top):
    """os.walk of mp/top (every folder read from its start, depth first): {folder: [uids]}.
    Its first two folders make it a walk; a moment then lets the listers
    start before the walk (local, no round trip to speak of) overtakes them."""
    os.listdir(os.path.join(mp, top))
    os.listdir(os.path.join(mp, WALK[0]))
    time.sleep(0.3)
    got = {}
    for path, dirs, files in os.walk(os.path.join(mp, top)):
        rel = os.path.relpath(path, mp)
        got[rel] = sorted(int(n.split("-", 1)[0].split(".", 1)[0])
                          for n in files if n.endswith(".eml"))
    return got


def server_uids(server, box):
    return sorted(server_listing(server, box))


def test_a_walk_lists_its_folders_in_one_burst(mounts, server):
    """A walk of many folders (ls -l, then a tree walk) has those it comes to
    next listed in one pipelined burst on one connection: every message
    exactly once, as a listing of each alone shows it; a folder deleted on
    the server meanwhile fails alone; a remount walks them at the commands a folder-by-folder
    resync costs (one EXAMINE each with CONDSTORE or QRESYNC), a folder
    recreated meanwhile (another UIDVALIDITY) listed anew."""
    make_walk_folders(server)
    ms = mounts("burst")
    m = ms.mount(log="imap")
    os.listdir(os.path.join(m.mountpoint, "Walk"))  # the folders are known now...
    with server.imaps("alice") as c:
        assert c.delete("Walk/f3")[0] == "OK"  # ...and one goes behind the mount's back
    # ls -l stats every folder after its readdir, each stat a listing (the
    # folder's mtime): the first one has them all listed in one burst.
    subprocess.run(["ls", "-l", os.path.join(m.mountpoint, "Walk")], check=True,
                   stdout=subprocess.DEVNULL)
    got = walk(m.mountpoint, "Walk")
    cmds = trace_commands(m.stderr())
    # The walk's own readdir of the folder gone says so (as before bursts).
    ms.unmount(allowed=[r"Walk/f3: .*(doesn't exist|NONEXISTENT)"])
    alive = [b for b in WALK if b != "Walk/f3"]
    for box in alive:
        assert got[box] == server_uids(server, box), box
    # Several folders' EXAMINEs in flight at once on one connection.
    assert max(n for c in cmds.values() for *_, n, _ in c) >= 5, cmds
    folders = per_folder(cmds)
    for box in alive:
        listing = [c for c in folders[box] if c not in ("SORT", "NEWEST")]
        assert listing == ["EXAMINE", "UID"], (box, folders[box])

    recreate(server, "Walk/f3", 2, delete=False)
    recreate(server, "Walk/f5", 4)
    m = ms.mount(log="imap")
    got = walk(m.mountpoint, "Walk")
    cmds = trace_commands(m.stderr())
    st = status(m.mountpoint)
    ms.unmount()
    for box in WALK:
        assert got[box] == server_uids(server, box), box
    assert max(n for c in cmds.values() for *_, n, _ in c) >= 5, cmds
    folders = per_folder(cmds)
    # As a remount of one unchanged folder costs (test above): the EXAMINE,
    # and without MODSEQ the flags of what is held.
    same = ["EXAMINE"] if server.mode != "plain" else ["EXAMINE", "UID"]
    for box in WALK:
        if box not in ("Walk/f3", "Walk/f5"):
            assert folders[box] == same, (box, folders[box])
    # The recreated one: its EXAMINE saw another UIDVALIDITY; listed in full.
    assert folders["Walk/f5"][-2:] == ["EXAMINE", "UID"], folders["Walk/f5"]
    assert int(st["listings_full"]) >= 2, st  # f3 (new here) and f5


GROW = {f"Grow/g{i}": 2 for i in range(1, 6)}
GROW["Grow/g3"] = 8  # the biggest, in the middle of the walk's order


def test_new_mail_in_a_bursts_biggest_folder_is_fetched_on_its_one_select(mounts, server):
    """A burst sends the folder holding the most messages last: at a remount,
    new mail there is fetched on the SELECT that found it (a big Maildir costs
    the server a fifth of a second to open), while a smaller folder with new
    mail is selected again to fetch it. Every folder lists what the server
    holds."""
    with server.imaps("alice") as c:
        for box, n in GROW.items():
            assert c.create(box)[0] == "OK"
            for i in range(n):
                assert c.append(box, None, None, b"Subject: grow %d\r\n\r\nbody\r\n" % i)[0] == "OK"

    def walk_grow(mp):
        os.listdir(os.path.join(mp, "Grow"))
        os.listdir(os.path.join(mp, "Grow", "g1"))
        time.sleep(0.3)
        return {os.path.relpath(path, mp): sorted(int(n.split("-", 1)[0]) for n in files
                                                  if n.endswith(".eml"))
                for path, _, files in os.walk(os.path.join(mp, "Grow"))}

    ms = mounts("grow")
    ms.mount()
    walk_grow(ms.current.mountpoint)
    ms.unmount()
    with server.imaps("alice") as c:
        for box, n in (("Grow/g3", 2), ("Grow/g1", 1)):
            for i in range(n):
                assert c.append(box, None, None, b"Subject: new %d\r\n\r\nnew\r\n" % i)[0] == "OK"
    m = ms.mount(log="imap")
    got = walk_grow(m.mountpoint)
    folders = per_folder(trace_commands(m.stderr()))
    ms.unmount()
    for box in GROW:
        assert got[box] == server_uids(server, box), box
    # Several folders listed in one burst, g3 among them.
    assert sum(len(v) for v in folders.values()) >= len(GROW), folders
    if server.mode != "plain":
        assert folders["Grow/g3"].count("EXAMINE") == 1, folders
    else:
        # Without MODSEQ the burst cannot tell what changed: selected again.
        assert folders["Grow/g3"].count("EXAMINE") == 2, folders


def test_a_first_listing_streams_to_ls(mounts, server):
    """A folder never listed: its stat gets the folder's mtime, the newest
    arrival's, before its listing is whole where the server names that
    arrival first (ESORT), and readdir gets the entries as they arrive, each
    once and in UID order, while another client adds and expunges."""
    box, n = "Stream", 3000
    write_maildir(server, "alice", box, n)
    path = os.path.join(server.base, "mail", "alice", box, "cur")
    newest = int(time.time()) + 86400
    # The newest arrival sits in the middle: not the highest UID.
    middle = sorted(os.listdir(path))[n // 2]
    os.utime(os.path.join(path, middle), (newest, newest))
    with server.imaps("alice") as c:
        assert c.select(box)[0] == "OK"
        assert c.append(box, None, imaplib.Time2Internaldate(newest - 10 * 86400),
                        b"Subject: old\r\n\r\nold\r\n")[0] == "OK"
        before = set(int(u) for u in c.uid("SEARCH", None, "ALL")[1][0].split())

    changed = []

    def others():
        with server.imaps("alice") as c:
            c.select(box)
            for i in range(5):
                assert c.append(box, None, None, b"Subject: new %d\r\n\r\nnew\r\n" % i)[0] == "OK"
                uid = sorted(before)[100 + 500 * i]
                assert c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")[0] == "OK"
                assert c.uid("EXPUNGE", str(uid))[0] == "OK"
                changed.append(uid)
            during = set(int(u) for u in c.uid("SEARCH", None, "ALL")[1][0].split())
        return during

    ms = mounts("stream")
    m = ms.mount(log="imap")
    folder = os.path.join(m.mountpoint, box)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = pool.submit(others)
        st = os.stat(folder)
        names = os.listdir(folder)
        after = job.result()
    assert int(st.st_mtime) == newest
    # A message expunged while listed may come without its Subject: "N.eml".
    uids = [int(name.split("-", 1)[0].split(".", 1)[0]) for name in names if name.endswith(".eml")]
    assert uids == sorted(set(uids)), "an entry given twice, or out of UID order"
    # Every message that was there throughout is shown; nothing never there is.
    assert (before - set(changed)) <= set(uids) <= (before | after)
    assert int(os.stat(folder).st_mtime) == newest
    ms.unmount()
    sent = [text for cmds in trace_commands(m.stderr()).values()
            for _, _, _, _, text in cmds]
    assert any("UID SORT RETURN (SAVE MIN) (REVERSE ARRIVAL)" in t for t in sent), sent[:20]
    assert any("UID FETCH $ (UID INTERNALDATE)" in t for t in sent)
