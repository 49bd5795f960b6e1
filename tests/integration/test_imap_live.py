# SPDX-License-Identifier: GPL-2.0-or-later
"""Live and resilient (issue 6): push through IDLE, and a server that goes
away. refresh is set high so that only push can explain what the tests see;
deadlines are generous and nothing asserts a time."""

import ctypes
import ctypes.util
import errno
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import time

import pytest

import corpus
import mailserver
from conftest import Mount, ctrl_c_able, password_file, load_delay_proxy, wait_for

USER = "erin"
MSG = (b"From: Zed <zed@example.org>\r\nTo: erin@example.org\r\n"
       b"Subject: Pushed %d\r\nMessage-ID: <pushed-%d@mailfs.test>\r\n\r\nHello.\r\n")


def flags_of(path):
    """user.imap.flags of a file, "" when it cannot be read (gone)."""
    return subprocess.run(["getfattr", "-n", "user.imap.flags", "--only-values", path],
                          capture_output=True, text=True).stdout


def reset_inbox(server):
    with server.imaps(USER) as c:
        typ, data = c.select("INBOX")
        if int(data[0]) > 0:
            c.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()
        for i in range(3):
            c.append("INBOX", "()", None, MSG % (i, i))
        c.create("Elsewhere")
        typ, data = c.select("Elsewhere")
        if int(data[0]) > 0:
            c.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()
        for i in range(2):
            c.append("Elsewhere", "()", None, MSG % (50 + i, 50 + i))


@pytest.fixture
def live(mount, dovecot):
    reset_inbox(dovecot)
    m = mount(user=USER, options={"refresh": 3600}, start=False)
    m.env = dict(m.env, MAILFS_IDLE_RENEW="5")
    m.start()
    return m


class Inotify:
    IN_CREATE = 0x100
    IN_DELETE = 0x200
    IN_DELETE_SELF = 0x400

    def __init__(self, *paths):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        for path in paths:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(path),
                                        self.IN_DELETE | self.IN_CREATE | self.IN_DELETE_SELF)
            assert wd >= 0, ctypes.get_errno()

    def events(self, timeout):
        out = []
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return out
        data = os.read(self.fd, 65536)
        i = 0
        while i < len(data):
            wd, mask, cookie, length = struct.unpack_from("iIII", data, i)
            name = data[i + 16:i + 16 + length].rstrip(b"\0").decode()
            out.append((mask, name))
            i += 16 + length
        return out

    def close(self):
        os.close(self.fd)


def test_new_mail_appears_by_push(live, dovecot):
    inbox = os.path.join(live.mountpoint, "INBOX")
    before = set(os.listdir(inbox))
    assert len(before) == 3
    with dovecot.imaps(USER) as c:
        c.append("INBOX", "()", None, MSG % (99, 99))
    new = wait_for(lambda: set(os.listdir(inbox)) - before, what="the new message in ls")
    assert len(new) == 1 and list(new)[0].endswith("-Pushed_99.eml")


def test_expunge_by_another_client_is_a_delete(live, dovecot):
    inbox = os.path.join(live.mountpoint, "INBOX")
    names = sorted(os.listdir(inbox), key=lambda n: int(n.split("-")[0]))
    victim = os.path.join(inbox, names[0])
    os.stat(victim)
    # FUSE's delete notification reaches watchers of the entry itself
    # (IN_DELETE_SELF); a watch on the folder is informed on kernels that
    # also send IN_DELETE to the parent.
    watcher = Inotify(inbox, victim)
    try:
        with dovecot.imaps(USER) as c:
            c.select("INBOX")
            c.uid("STORE", names[0].split("-")[0], "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()
        events = []

        def deleted():
            return any(m & (Inotify.IN_DELETE | Inotify.IN_DELETE_SELF) for m, n in events
                       if n in ("", names[0]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not deleted():
            events += watcher.events(1)
        assert deleted(), (events, live.stderr())
    finally:
        watcher.close()
    with pytest.raises(FileNotFoundError):
        os.stat(victim)


def test_flags_set_by_another_client_show(live, dovecot):
    inbox = os.path.join(live.mountpoint, "INBOX")
    name = sorted(os.listdir(inbox))[0]
    path = os.path.join(inbox, name)
    assert "\\Flagged" not in flags_of(path)
    with dovecot.imaps(USER) as c:
        c.select("INBOX")
        c.uid("STORE", name.split("-")[0], "+FLAGS.SILENT", "(\\Flagged)")
    wait_for(lambda: "\\Flagged" in flags_of(path), what="\\Flagged in user.imap.flags")


def test_other_folders_are_pushed_with_notify(live, dovecot):
    """dovecot offers NOTIFY: a folder other than INBOX that was listed is
    kept up to date by push too (refresh is 3600 s here)."""
    folder = os.path.join(live.mountpoint, "Elsewhere")
    names = sorted(os.listdir(folder))
    assert len(names) == 2, names
    with dovecot.imaps(USER) as c:
        c.append("Elsewhere", "()", None, MSG % (60, 60))
    wait_for(lambda: any(n.endswith("-Pushed_60.eml") for n in os.listdir(folder)),
             what="the new message in ls of Elsewhere")
    victim = os.path.join(folder, names[0])
    os.stat(victim)
    with dovecot.imaps(USER) as c:
        c.select("Elsewhere")
        c.uid("STORE", names[0].split("-")[0], "+FLAGS.SILENT", "(\\Deleted)")
        c.expunge()
    wait_for(lambda: not os.path.exists(victim), what="the expunged message gone")
    assert names[0] not in os.listdir(folder)
    path = os.path.join(folder, names[1])
    assert "\\Flagged" not in flags_of(path)
    with dovecot.imaps(USER) as c:
        c.select("Elsewhere")
        c.uid("STORE", names[1].split("-")[0], "+FLAGS.SILENT", "(\\Flagged)")
    wait_for(lambda: "\\Flagged" in flags_of(path), what="\\Flagged in user.imap.flags")


def test_open_file_of_expunged_message_keeps_its_bytes(live, dovecot):
    inbox = os.path.join(live.mountpoint, "INBOX")
    name = sorted(os.listdir(inbox))[0]
    with open(os.path.join(inbox, name), "rb") as f:
        data = f.read()
        with dovecot.imaps(USER) as c:
            c.select("INBOX")
            c.uid("STORE", name.split("-")[0], "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()
        wait_for(lambda: name not in os.listdir(inbox), what="the expunged file to go")
        assert os.pread(f.fileno(), len(data) + 10, 0) == data


def test_uidvalidity_change_drops_everything(mount, dovecot):
    with dovecot.imaps(USER) as c:
        c.delete('"Box"')
        c.create('"Box"')
        for i in range(3):
            c.append('"Box"', "()", None, MSG % (100 + i, 100 + i))
    m = mount(user=USER, options={"refresh": 1})
    box = os.path.join(m.mountpoint, "Box")
    old = sorted(os.listdir(box))
    for n in old:
        with open(os.path.join(box, n), "rb") as f:
            f.read()
    with dovecot.imaps(USER) as c:
        c.delete('"Box"')
        c.create('"Box"')
        new_msgs = [MSG % (200 + i, 200 + i) for i in range(2)]
        for msg in new_msgs:
            c.append('"Box"', "()", None, msg)
    names = wait_for(lambda: (lambda n: n if n != old and len(n) == 2 else None)(
        sorted(os.listdir(box))), what="the new generation of Box")
    got = []
    for n in names:
        with open(os.path.join(box, n), "rb") as f:
            got.append(f.read())
    assert sorted(got) == sorted(new_msgs)
    assert all("Pushed_20" in n for n in names)


def test_recreated_mailbox_never_serves_the_new_generation_under_old_names(mount, dovecot):
    """Box is deleted and made again with other messages under the same UIDs
    while the mount still holds the old listing (no push, no refresh): an old
    name read afterwards fails with ESTALE, it never gives the new bytes,
    although the reader's SELECT and FETCH go out together."""
    with dovecot.imaps(USER) as c:
        c.delete('"Box"')
        c.create('"Box"')
        for i in range(3):
            c.append('"Box"', "()", None, MSG % (300 + i, 300 + i))
    m = mount(user=USER, options={"refresh": 3600, "idle": "no", "prefetch": 0})
    box = os.path.join(m.mountpoint, "Box")
    old = sorted(os.listdir(box))
    assert len(old) == 3
    new_msgs = [MSG % (400 + i, 400 + i) for i in range(3)]
    with dovecot.imaps(USER) as c:
        c.delete('"Box"')
        c.create('"Box"')
        for msg in new_msgs:
            c.append('"Box"', "()", None, msg)
    for n in old:
        try:
            with open(os.path.join(box, n), "rb") as f:
                data = f.read()
        except OSError as e:
            assert e.errno == errno.ESTALE, (n, e)
            continue
        raise AssertionError(f"{n} read {data!r} from another generation of Box")
    # dovecot drops a connection whose selected mailbox was deleted.
    m.unmount(allowed=[r"warning: Box: .* closed the connection"])


def test_a_mailbox_whose_uidvalidity_keeps_changing_is_reported(mount, dovecot):
    """A server that gives a mailbox a new UIDVALIDITY again and again (GNU
    Mailutils' imap4d does, on every read-only session) has no stable UIDs:
    mailfs says so once, in the log and in user.mailfs.status."""
    m = mount(user=USER, options={"refresh": 0, "idle": "no", "prefetch": 0})
    box = os.path.join(m.mountpoint, "Churn")
    seen = set()
    try:
        for gen in range(4):
            with dovecot.imaps(USER) as c:
                c.delete('"Churn"')
                c.create('"Churn"')
                c.append('"Churn"', "()", None, MSG % (500 + gen, 500 + gen))
                c.select('"Churn"', readonly=True)
                seen.add(c.response("UIDVALIDITY")[1][0])
            assert len(os.listdir(box)) == 1
            time.sleep(1.1)  # dovecot's UIDVALIDITY is a time: make each new
        assert len(seen) == 4, seen
        log = [l for l in m.stderr().splitlines() if "changed its UIDVALIDITY" in l]
        assert len(log) == 1 and "Churn" in log[0], m.stderr()
        status = os.getxattr(m.mountpoint, "user.mailfs.status").decode()
        assert re.search(r"uidvalidity_unstable: Churn \(", status), status
    finally:
        with dovecot.imaps(USER) as c:
            c.delete('"Churn"')
    m.unmount(allowed=[r"changed its UIDVALIDITY", r"warning: Churn: .* closed the connection"])


# -- a server that goes away --------------------------------------------------------

@pytest.fixture(scope="module")
def private_dovecot(workdir):
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-live"))
    server.start()
    with server.imaps("alice") as c:
        corpus.seed(c, corpus.build(include_pyemail=False))
    yield server
    try:
        server.thaw()
    except Exception:
        pass
    server.stop()


def private_mount(mailfs_bin, server, workdir, name, **options):
    opts = {"ca_file": server.ca, "password_file": password_file(workdir, server, "alice"),
            "cache_dir": os.path.join(workdir, "cache-live-" + name)}
    opts.update(options)
    m = Mount(mailfs_bin, server.url("alice"), os.path.join(workdir, "mnt-live-" + name), opts,
              workdir)
    return m.start()


OFFLINE = [r"warning: .*(timed out|connect|refused|closed|push for|is down)", r"warning: .*EXAMINE"]


def test_frozen_server_gives_eio_and_unmount_works(mailfs_bin, private_dovecot, workdir):
    m = private_mount(mailfs_bin, private_dovecot, workdir, "frozen", timeout=2)
    try:
        private_dovecot.freeze()
        with pytest.raises(OSError) as e:
            os.listdir(os.path.join(m.mountpoint, "Archive"))
        assert e.value.errno == errno.EIO
        m.unmount(allowed=OFFLINE)
    finally:
        private_dovecot.thaw()
        if m.proc.poll() is None:
            m.kill()


def test_ctrl_c_on_a_reader_waiting_for_a_frozen_server(mailfs_bin, private_dovecot, workdir):
    """A reader stuck on a server that does not answer is let go at Ctrl-C
    (FUSE interrupt: its fetch is aborted, EINTR), long before `timeout`;
    the mount goes on working once the server is back."""
    m = private_mount(mailfs_bin, private_dovecot, workdir, "ctrlc", timeout=300)
    try:
        inbox = os.path.join(m.mountpoint, "INBOX")
        name = sorted(os.listdir(inbox))[-1]
        private_dovecot.freeze()
        reader = subprocess.Popen(["cat", os.path.join(inbox, name)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  preexec_fn=ctrl_c_able)
        time.sleep(1)  # let it reach the daemon and wait there
        assert reader.poll() is None, "the read did not wait for the frozen server"
        reader.send_signal(signal.SIGINT)
        try:
            reader.wait(60)  # far below the 300 s timeout: the interrupt, not a timeout
        except subprocess.TimeoutExpired:
            reader.kill()
            pytest.fail("Ctrl-C did not free a reader waiting for the server")
        private_dovecot.thaw()
        with private_dovecot.imaps("alice") as c:
            c.select("INBOX", readonly=True)
            uid = name.split("-", 1)[0].split(".", 1)[0]
            want = c.uid("FETCH", uid, "(BODY.PEEK[])")[1][0][1]
        with open(os.path.join(inbox, name), "rb") as f:
            assert f.read() == want
        m.unmount(allowed=OFFLINE + [r"warning: .*(interrupt|abort)"])
    finally:
        private_dovecot.thaw()
        if m.proc.poll() is None:
            m.kill()


def test_server_restart_during_rsync(mailfs_bin, private_dovecot, workdir, tmp_path):
    m = private_mount(mailfs_bin, private_dovecot, workdir, "restart", timeout=5)
    copy = tmp_path / "copy"
    try:
        rsync = subprocess.Popen(["rsync", "-a", m.mountpoint + "/", str(copy) + "/"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.3)
        private_dovecot.stop()
        out = rsync.communicate(timeout=120)[0]
        private_dovecot.start()

        def healthy():
            # Reading every message needs the server for what is not cached
            # (listings alone answer from memory while it is away); the pool
            # reconnects with backoff, so this may take a few tries.
            files = [os.path.join(d, n) for d, _, names in os.walk(m.mountpoint)
                     for n in names]
            r = subprocess.run(["cat"] + files, capture_output=True)
            return r.returncode == 0
        wait_for(healthy, timeout=120, what="the mount to reach the server again")
        r = subprocess.run(["rsync", "-a", m.mountpoint + "/", str(copy) + "/"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        with private_dovecot.imaps("alice") as c:
            c.select("INBOX", readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        bodies = sorted(item[1] for item in data if isinstance(item, tuple))
        local = sorted((copy / "INBOX" / n).read_bytes() for n in os.listdir(copy / "INBOX"))
        assert local == bodies
        m.unmount(allowed=OFFLINE)
    finally:
        if m.proc.poll() is None:
            m.kill()


def test_rsync_through_a_link_that_keeps_breaking(mailfs_bin, private_dovecot, workdir, tmp_path):
    proxy = load_delay_proxy().start("127.0.0.1", private_dovecot.ports["imaps"], 0, 300 * 1024)
    opts = {"ca_file": private_dovecot.ca,
            "password_file": password_file(workdir, private_dovecot, "alice"),
            "cache_dir": os.path.join(workdir, "cache-live-cut"), "timeout": 3}
    m = Mount(mailfs_bin, f"imaps://alice@localhost:{proxy.port}",
              os.path.join(workdir, "mnt-live-cut"), opts, workdir).start()
    copy = tmp_path / "copy"
    try:
        r = subprocess.run(["rsync", "-a", m.mountpoint + "/", str(copy) + "/"],
                           capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        for folder in ("INBOX", "Archive/2024/Q1"):
            with private_dovecot.imaps("alice") as c:
                c.select(corpus._q(corpus.mutf7_encode(folder)), readonly=True)
                typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
            bodies = sorted(item[1] for item in data if isinstance(item, tuple))
            d = copy / folder
            assert sorted((d / n).read_bytes() for n in os.listdir(d)) == bodies
        m.unmount(allowed=OFFLINE)
    finally:
        if m.proc.poll() is None:
            m.kill()
        proxy.stop()


def expunge_subject(server, box, subject):
    """Expunge from box the messages a test wrote there with this subject: the
    module's corpus as it was."""
    with server.imaps("alice") as c:
        c.select(box)
        typ, data = c.uid("SEARCH", "SUBJECT", f'"{subject}"')
        for uid in data[0].split():
            c.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
        c.expunge()


def push_watching(m, connects):
    """m's push connected `connects` times (one NOTIFY SET each) and went on
    to IDLE after the last: what it found at that connect is applied. (An
    IDLE count alone would also count an IDLE renewed after an event.)"""
    log = m.stderr()
    sets = [x.start() for x in re.finditer(r" C: \S+ NOTIFY SET ", log)]
    return len(sets) >= connects and bool(re.search(r" C: \S+ IDLE$", log[sets[-1]:], re.M))


def test_push_back_lists_inbox_again_only_when_it_changed(mailfs_bin, private_dovecot, workdir):
    """Each time push connects, INBOX is listed again unless push's EXAMINE
    finds it in the state it was listed in (UIDVALIDITY, UIDNEXT, EXISTS,
    HIGHESTMODSEQ): a mount's first listing is not made twice, and mail that
    came while push was away still shows, with refresh too high to explain it."""
    m = private_mount(mailfs_bin, private_dovecot, workdir, "repush", refresh=3600, log="imap")
    inbox = os.path.join(m.mountpoint, "INBOX")

    def counters():
        out = os.getxattr(m.mountpoint, "user.mailfs.status").decode()
        st = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return int(st["listings_full"]), int(st["listings_resynced"])

    try:
        names = set(os.listdir(inbox))
        wait_for(lambda: push_watching(m, 1), timeout=60, what="push to IDLE")
        listed = counters()
        private_dovecot.restart()
        wait_for(lambda: push_watching(m, 2), timeout=60, what="push to IDLE again")
        assert counters() == listed, "an unchanged INBOX was listed again"
        assert set(os.listdir(inbox)) == names

        private_dovecot.stop()
        new = os.path.join(private_dovecot.base, "mail", "alice", "new", "1.repush.mailfs")
        with open(new, "wb") as f:
            f.write(b"From: a@example.org\nSubject: while push was away\n\nHi.\n")
        shutil.chown(new, "dovecot", "dovecot")
        private_dovecot.start()
        wait_for(lambda: push_watching(m, 3), timeout=60, what="push to IDLE a third time")
        assert counters()[1] == listed[1] + 1
        added = set(os.listdir(inbox)) - names
        assert len(added) == 1 and "while_push_was_away" in added.pop(), added
        m.unmount(allowed=OFFLINE)
    finally:
        if m.proc.poll() is None:
            m.kill()
        expunge_subject(private_dovecot, "INBOX", "while push was away")


def test_push_back_lists_other_folders_again_only_when_they_changed(mailfs_bin, private_dovecot,
                                                                    workdir):
    """With NOTIFY, each time push connects it asks for every mailbox's state
    (NOTIFY SET STATUS): a folder listed in that very state is not listed
    again when next read; one that changed while push was away is, with
    refresh too high to explain it."""
    m = private_mount(mailfs_bin, private_dovecot, workdir, "repush-all", refresh=3600,
                      log="imap")
    archive = os.path.join(m.mountpoint, "Archive")
    debian = os.path.join(m.mountpoint, "Lists", "debian")

    def examined_since_connect(connects, box):
        """EXAMINEs of box since push's connect number `connects` (reading two
        folders makes a walk, whose listers list others meanwhile: only
        these two folders are counted)."""
        log = m.stderr()
        sets = [x.start() for x in re.finditer(r" C: \S+ NOTIFY SET ", log)]
        return len(re.findall(r' C: \S+ EXAMINE "%s" ' % re.escape(box), log[sets[connects - 1]:]))

    new = os.path.join(private_dovecot.base, "mail", "alice", "Archive", "new",
                       "1.repush-all.mailfs")
    try:
        names = {d: set(os.listdir(d)) for d in (archive, debian)}
        wait_for(lambda: push_watching(m, 1), timeout=60, what="push to IDLE")
        private_dovecot.restart()
        wait_for(lambda: push_watching(m, 2), timeout=60, what="push to IDLE again")
        for d, before in names.items():
            assert set(os.listdir(d)) == before
        assert [examined_since_connect(2, b) for b in ("Archive", "Lists/debian")] == [0, 0], \
            "an unchanged folder was listed again"

        private_dovecot.stop()
        with open(new, "wb") as f:
            f.write(b"From: a@example.org\nSubject: archived while push was away\n\nHi.\n")
        shutil.chown(new, "dovecot", "dovecot")
        private_dovecot.start()
        wait_for(lambda: push_watching(m, 3), timeout=60, what="push to IDLE a third time")
        assert set(os.listdir(debian)) == names[debian]
        added = set(os.listdir(archive)) - names[archive]
        assert len(added) == 1 and "archived_while_push_was_away" in added.pop(), added
        # Archive at least once: the EXAMINE that finds the message is also
        # what makes dovecot take it in, which NOTIFY then reports (its STATUS
        # event has no UIDVALIDITY to compare with): a second check may follow.
        assert examined_since_connect(3, "Lists/debian") == 0, "an unchanged folder was listed again"
        assert examined_since_connect(3, "Archive") >= 1
        m.unmount(allowed=OFFLINE)
    finally:
        if m.proc.poll() is None:
            m.kill()
        expunge_subject(private_dovecot, "Archive", "archived while push was away")
