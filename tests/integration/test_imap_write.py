# SPDX-License-Identifier: GPL-2.0-or-later
"""Writing through the mount (issue 5): every operation done with the shell,
and the server's state checked afterwards with imaplib. These tests use the
user dave, whose mailbox they change; each test starts from a fresh seed."""

import errno
import os
import re
import shutil
import subprocess
import time

import pytest

import corpus
import mailserver
from conftest import Mount, password_file, sanitizer_env

USER = "dave"
FOLDERS = ["INBOX", "Work", "Work/Old", "Empty", "Trash"]


def q(name):
    return corpus._q(corpus.mutf7_encode(name))


def seed(server, user=USER):
    """A small known mailbox: 4 messages in INBOX, 2 in Work, 1 in Work/Old."""
    with server.imaps(user) as c:
        typ, lines = c.list()
        for line in sorted(lines or [], key=len, reverse=True):
            if not line:
                continue
            name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
            if name != "INBOX":
                c.delete(f'"{name}"')
        typ, data = c.select("INBOX")
        if int(data[0]) > 0:
            c.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()
        c.close()
        msgs = corpus.build(include_pyemail=False)
        plan = [("INBOX", msgs[0]), ("INBOX", msgs[1]), ("INBOX", msgs[2]), ("INBOX", msgs[20]),
                ("Work", msgs[26]), ("Work", msgs[27]), ("Work/Old", msgs[28])]
        seeded = [(f, m[1], m[2], m[3]) for f, m in plan]
        corpus.seed(c, seeded, folders=[f for f in FOLDERS if f != "INBOX"])


def server_uids(server, folder, user=USER):
    with server.imaps(user) as c:
        typ, data = c.select(q(folder), readonly=True)
        if typ != "OK":
            return None
        typ, data = c.uid("SEARCH", None, "ALL")
        return [int(x) for x in data[0].split()]


def server_bodies(server, folder, user=USER):
    out = {}
    with server.imaps(user) as c:
        c.select(q(folder), readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
                date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                out[uid] = (item[1], sorted(f for f in flags if f != "\\Recent"), date)
    return out


def server_folders(server, user=USER):
    with server.imaps(user) as c:
        typ, lines = c.list()
    return {corpus.mutf7_decode(l.decode().rsplit(' "/" ', 1)[1].strip('"')) for l in lines}


@pytest.fixture
def dave(dovecot):
    seed(dovecot)
    return dovecot


@pytest.fixture
def wmount(mount, dave):
    def make(**options):
        return mount(user=USER, options=options)
    return make


def message_path(m, folder, uid):
    d = os.path.join(m.mountpoint, folder)
    for n in os.listdir(d):
        if n.startswith(f"{uid}-") or n == f"{uid}.eml":
            return os.path.join(d, n)
    raise FileNotFoundError(f"{folder}/{uid}")


# -- folders ---------------------------------------------------------------------

def test_mkdir_creates_and_rmdir_deletes(wmount, dave):
    m = wmount()
    os.mkdir(os.path.join(m.mountpoint, "Projekte"))
    os.mkdir(os.path.join(m.mountpoint, "Work", "Neu größer"))
    assert {"Projekte", "Work/Neu größer"} <= server_folders(dave)
    assert os.path.isdir(os.path.join(m.mountpoint, "Work", "Neu größer"))
    os.rmdir(os.path.join(m.mountpoint, "Work", "Neu größer"))
    assert "Work/Neu größer" not in server_folders(dave)
    assert "Neu größer" not in os.listdir(os.path.join(m.mountpoint, "Work"))


def test_mkdir_with_the_delimiter_is_einval(wmount):
    m = wmount()
    with pytest.raises(OSError) as e:
        os.mkdir(os.path.join(m.mountpoint, "a%2Fb"))
    assert e.value.errno == errno.EINVAL


def test_rmdir_of_non_empty_folder_is_enotempty(wmount, dave):
    m = wmount()
    for folder in ("Work", "Work/Old"):
        with pytest.raises(OSError) as e:
            os.rmdir(os.path.join(m.mountpoint, folder))
        assert e.value.errno == errno.ENOTEMPTY
    assert {"Work", "Work/Old"} <= server_folders(dave)
    assert len(server_uids(dave, "Work/Old")) == 1


def test_mv_folder_renames_with_children(wmount, dave):
    m = wmount()
    os.rename(os.path.join(m.mountpoint, "Work"), os.path.join(m.mountpoint, "Arbeit"))
    folders = server_folders(dave)
    assert {"Arbeit", "Arbeit/Old"} <= folders and "Work" not in folders
    assert len(os.listdir(os.path.join(m.mountpoint, "Arbeit", "Old"))) == 1
    assert not os.path.exists(os.path.join(m.mountpoint, "Work"))


@pytest.mark.parametrize("name", ["INBOX", "Trash"])
def test_inbox_and_trash_are_protected(wmount, dave, name):
    m = wmount()
    with pytest.raises(PermissionError):
        os.rename(os.path.join(m.mountpoint, name), os.path.join(m.mountpoint, name + "2"))
    if name == "Trash":
        with pytest.raises(PermissionError):
            os.rmdir(os.path.join(m.mountpoint, name))
    assert name in server_folders(dave)


# -- messages --------------------------------------------------------------------

def test_rm_moves_to_trash_and_rm_in_trash_expunges(wmount, dave):
    m = wmount()
    before = server_bodies(dave, "INBOX")
    uid = min(before)
    os.unlink(message_path(m, "INBOX", uid))
    assert uid not in server_uids(dave, "INBOX")
    trash = server_bodies(dave, "Trash")
    assert [b for b, _, _ in trash.values()] == [before[uid][0]]
    assert not any(n.startswith(f"{uid}-") for n in os.listdir(os.path.join(m.mountpoint, "INBOX")))
    # In Trash, rm is permanent.
    tuid = list(trash)[0]
    os.unlink(message_path(m, "Trash", tuid))
    assert server_uids(dave, "Trash") == []


def test_rm_expunges_only_its_own_message(wmount, dave):
    m = wmount(delete="expunge")
    uids = server_uids(dave, "INBOX")
    other, mine = uids[0], uids[1]
    with dave.imaps(USER) as c:
        c.select("INBOX")
        c.uid("STORE", str(other), "+FLAGS.SILENT", "(\\Deleted)")
    os.unlink(message_path(m, "INBOX", mine))
    left = server_uids(dave, "INBOX")
    assert mine not in left and other in left
    assert server_uids(dave, "Trash") == []


def test_mv_message_to_another_folder(wmount, dave):
    m = wmount()
    src = server_bodies(dave, "INBOX")
    uid = max(src)
    path = message_path(m, "INBOX", uid)
    os.rename(path, os.path.join(m.mountpoint, "Work", os.path.basename(path)))
    assert uid not in server_uids(dave, "INBOX")
    work = server_bodies(dave, "Work")
    assert src[uid][0] in [b for b, _, _ in work.values()]
    new_uid = max(work)
    names = os.listdir(os.path.join(m.mountpoint, "Work"))
    assert any(n.startswith(f"{new_uid}-") for n in names)
    with open(message_path(m, "Work", new_uid), "rb") as f:
        assert f.read() == src[uid][0]


def test_renaming_a_message_in_its_folder_is_eperm(wmount):
    m = wmount()
    inbox = os.path.join(m.mountpoint, "INBOX")
    name = sorted(os.listdir(inbox))[0]
    with pytest.raises(PermissionError):
        os.rename(os.path.join(inbox, name), os.path.join(inbox, "renamed.eml"))


def test_setfattr_sets_flags(wmount, dave):
    m = wmount()
    uid = server_uids(dave, "INBOX")[0]
    path = message_path(m, "INBOX", uid)
    subprocess.run(["setfattr", "-n", "user.imap.flags", "-v", "\\Seen \\Flagged $Work", path],
                   check=True)
    assert server_bodies(dave, "INBOX")[uid][1] == sorted(["\\Seen", "\\Flagged", "$Work"])
    out = subprocess.run(["getfattr", "-n", "user.imap.flags", "--only-values", path],
                         capture_output=True, text=True, check=True).stdout
    # The server's order may come back with a later listing (push).
    assert sorted(out.split()) == sorted(["\\Seen", "\\Flagged", "$Work"])
    r = subprocess.run(["setfattr", "-n", "user.imap.flags", "-v", "\\Recent", path],
                       capture_output=True, text=True)
    assert r.returncode != 0


# -- new messages ----------------------------------------------------------------

def test_cp_round_trip(wmount, dave, tmp_path):
    m = wmount()
    src = server_bodies(dave, "INBOX")
    uid = min(src)
    local = tmp_path / "msg.eml"
    shutil.copyfile(message_path(m, "INBOX", uid), local)
    assert local.read_bytes() == src[uid][0]
    subprocess.run(["cp", "-p", str(local), os.path.join(m.mountpoint, "Empty", "copy.eml")],
                   check=True)
    got = server_bodies(dave, "Empty")
    assert [b for b, _, _ in got.values()] == [src[uid][0]]
    # It shows under its canonical name, and reads back the same bytes.
    new_uid = list(got)[0]
    with open(message_path(m, "Empty", new_uid), "rb") as f:
        assert f.read() == src[uid][0]
    # A second copy of the same message (same bytes and mtime) is not
    # appended again.
    subprocess.run(["cp", "-p", str(local), os.path.join(m.mountpoint, "Empty", "again.eml")],
                   check=True)
    assert len(server_uids(dave, "Empty")) == 1


def test_plain_cp_twice_sends_once(wmount, dave, tmp_path):
    """A plain cp gives each copy its own mtime: the bytes alone say the
    message is there already, so an interrupted `cp -r` run again does not
    duplicate mail."""
    m = wmount()
    local = tmp_path / "twice.eml"
    local.write_bytes(b"Subject: twice\r\n\r\nno Message-ID here\r\n")
    for name in ("a.eml", "b.eml"):
        subprocess.run(["cp", str(local), os.path.join(m.mountpoint, "Empty", name)], check=True)
        time.sleep(1.1)  # the second copy's mtime is another second
    assert [b for b, _, _ in server_bodies(dave, "Empty").values()] == [local.read_bytes()]


def test_file_without_header_is_appended(wmount, dave, tmp_path):
    """Whatever is written is sent; the server judges (dovecot takes it)."""
    m = wmount()
    local = tmp_path / "not-mail.txt"
    local.write_bytes(b"just some text\nno header here\n")
    subprocess.run(["cp", str(local), os.path.join(m.mountpoint, "Empty", "x.eml")], check=True)
    got = list(server_bodies(dave, "Empty").values())
    assert [b for b, _, _ in got] == [b"just some text\r\nno header here\r\n"]


def test_nul_byte_is_einval_at_write(wmount, dave, tmp_path):
    m = wmount()
    local = tmp_path / "nul.eml"
    local.write_bytes(b"Subject: x\n\nNUL \0 here\n")
    r = subprocess.run(["cp", str(local), os.path.join(m.mountpoint, "Empty", "x.eml")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert server_uids(dave, "Empty") == []


def test_mbox_from_line_kept_and_bare_lf(wmount, dave, tmp_path):
    m = wmount()
    local = tmp_path / "lf.eml"
    local.write_bytes(b"From alice@example.org Mon Jan  1 00:00:00 2024\n"
                      b"From: a@example.org\nSubject: LF only\n\nbody line\n")
    subprocess.run(["cp", str(local), os.path.join(m.mountpoint, "Empty", "lf.eml")], check=True)
    got = list(server_bodies(dave, "Empty").values())
    assert [b for b, _, _ in got] == [b"From alice@example.org Mon Jan  1 00:00:00 2024\r\n"
                                      b"From: a@example.org\r\nSubject: LF only\r\n\r\n"
                                      b"body line\r\n"]
    # Again, with its mtime kept: the bytes after the CRLF conversion, the
    # size and the date are the folder's already, so nothing is appended.
    subprocess.run(["cp", "-p", str(local), os.path.join(m.mountpoint, "Empty", "lf.eml")],
                   check=True)
    subprocess.run(["cp", "-p", str(local), os.path.join(m.mountpoint, "Empty", "lf2.eml")],
                   check=True)
    assert len(server_bodies(dave, "Empty")) == 1


def test_rsync_restore_twice(wmount, dave, tmp_path):
    m = wmount()
    backup = tmp_path / "backup"
    r = subprocess.run(["rsync", "-aX", os.path.join(m.mountpoint, "INBOX") + "/", str(backup) + "/"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    original = server_bodies(dave, "INBOX")
    for attempt in range(2):
        r = subprocess.run(["rsync", "-aX", str(backup) + "/",
                            os.path.join(m.mountpoint, "Empty") + "/"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        restored = server_bodies(dave, "Empty")
        assert sorted(b for b, _, _ in restored.values()) == \
            sorted(b for b, _, _ in original.values()), f"attempt {attempt}"
    # Flags and INTERNALDATE came along.
    by_body = {b: (f, d) for b, f, d in original.values()}
    for b, f, d in restored.values():
        assert (f, d) == by_body[b]


def test_readonly_refuses_every_write(mount, dave, tmp_path):
    m = mount(user=USER, options={"readonly": "yes"})
    before = {f: server_uids(dave, f) for f in FOLDERS}
    inbox = os.path.join(m.mountpoint, "INBOX")
    name = sorted(os.listdir(inbox))[0]
    local = tmp_path / "m.eml"
    local.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    attempts = [
        lambda: os.mkdir(os.path.join(m.mountpoint, "New")),
        lambda: os.rmdir(os.path.join(m.mountpoint, "Empty")),
        lambda: os.rename(os.path.join(m.mountpoint, "Work"), os.path.join(m.mountpoint, "W2")),
        lambda: os.unlink(os.path.join(inbox, name)),
        lambda: os.rename(os.path.join(inbox, name), os.path.join(m.mountpoint, "Work", name)),
        lambda: shutil.copyfile(local, os.path.join(inbox, "new.eml")),
        lambda: os.setxattr(os.path.join(inbox, name), "user.imap.flags", b"\\Seen"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS
    assert {f: server_uids(dave, f) for f in FOLDERS} == before
    assert "New" not in server_folders(dave)


# -- servers without MOVE, with a quota ----------------------------------------------

NO_MOVE_CAPS = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
                "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "
                "CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "
                "CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
                "BINARY SPECIAL-USE LITERAL+ APPENDLIMIT=307200")


@pytest.fixture(scope="module")
def special_dovecot(workdir):
    """A second dovecot: no MOVE advertised, and a 256 KiB quota."""
    server = mailserver.Dovecot(
        os.path.join(workdir, "dovecot-special"),
        imap_extra=f"  imap_capability = {NO_MOVE_CAPS}\n"
                   "  mail_plugins = $mail_plugins quota imap_quota",
        extra="mail_plugins = $mail_plugins quota\n"
              "plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=256K\n"
              "  quota_max_mail_size = 300K\n}\n")
    server.start()
    yield server
    server.stop()


def special_mount(mailfs_bin, server, workdir, name, **options):
    opts = {"ca_file": server.ca, "password_file": password_file(workdir, server, USER),
            "cache_dir": os.path.join(workdir, "cache-special-" + name)}
    opts.update(options)
    m = Mount(mailfs_bin, server.url(USER), os.path.join(workdir, "mnt-special-" + name), opts,
              workdir)
    return m.start()


def test_move_without_move_capability(mailfs_bin, special_dovecot, workdir):
    seed(special_dovecot)
    with special_dovecot.imaps(USER) as c:
        assert "MOVE" not in c.capabilities
    m = special_mount(mailfs_bin, special_dovecot, workdir, "nomove")
    try:
        src = server_bodies(special_dovecot, "INBOX")
        uid = max(src)
        path = message_path(m, "INBOX", uid)
        os.rename(path, os.path.join(m.mountpoint, "Work", os.path.basename(path)))
        assert uid not in server_uids(special_dovecot, "INBOX")
        assert src[uid][0] in [b for b, _, _ in server_bodies(special_dovecot, "Work").values()]
        uid2 = min(server_uids(special_dovecot, "INBOX"))
        os.unlink(message_path(m, "INBOX", uid2))
        assert uid2 not in server_uids(special_dovecot, "INBOX")
        assert len(server_uids(special_dovecot, "Trash")) == 1
    finally:
        m.unmount()


def test_quota_exceeded_is_edquot(mailfs_bin, special_dovecot, workdir, tmp_path):
    seed(special_dovecot)
    m = special_mount(mailfs_bin, special_dovecot, workdir, "quota")
    try:
        big = tmp_path / "big.eml"
        big.write_bytes(b"Subject: big\r\nMessage-ID: <big@mailfs.test>\r\n\r\n"
                        + (b"y" * 78 + b"\r\n") * 3250)
        with pytest.raises(OSError) as e:
            shutil.copyfile(big, os.path.join(m.mountpoint, "Empty", "big.eml"))
        assert e.value.errno == errno.EDQUOT
        assert server_uids(special_dovecot, "Empty") == []
    finally:
        m.unmount()


# -- an unprivileged user ------------------------------------------------------------

def test_unprivileged_user_sets_a_flag(mailfs_bin, dave, workdir):
    import pwd
    nobody = pwd.getpwnam("nobody")
    base = os.path.join(workdir, "nobody")
    os.makedirs(base, exist_ok=True)
    for d in (base,):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        os.chmod(d, 0o700)
    mnt = os.path.join(base, "mnt")
    pw = os.path.join(base, "pw")
    ca = os.path.join(base, "ca.crt")
    shutil.copyfile(dave.ca, ca)
    with open(pw, "w") as f:
        f.write(dave.users[USER] + "\n")
    os.chmod(pw, 0o600)
    os.mkdir(mnt)
    for p in (mnt, pw, ca):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups", "--"]
    # Debian's udev makes /dev/fuse 0666; some containers leave it 0600.
    fuse_mode = os.stat("/dev/fuse").st_mode & 0o777
    os.chmod("/dev/fuse", fuse_mode | 0o666)
    env = sanitizer_env()
    env["HOME"] = base
    proc = subprocess.Popen(as_nobody + [mailfs_bin, "-f", "-o",
                                         f"ca_file={ca},password_file={pw},"
                                         f"cache_dir={base}/cache",
                                         dave.url(USER), mnt],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        from conftest import mounted
        while not mounted(mnt):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        uid = server_uids(dave, "INBOX")[0]
        names = subprocess.run(as_nobody + ["ls", os.path.join(mnt, "INBOX")],
                               capture_output=True, text=True, check=True).stdout.split()
        name = [n for n in names if n.startswith(f"{uid}-")][0]
        subprocess.run(as_nobody + ["setfattr", "-n", "user.imap.flags", "-v", "\\Flagged",
                                    os.path.join(mnt, "INBOX", name)], check=True)
        assert server_bodies(dave, "INBOX")[uid][1] == ["\\Flagged"]
        subprocess.run(as_nobody + ["fusermount3", "-u", mnt], check=True)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
            os.killpg(proc.pid, 9)
            proc.wait(10)
        os.chmod("/dev/fuse", fuse_mode)


def test_appendlimit_refuses_before_upload(mailfs_bin, special_dovecot, workdir, tmp_path):
    seed(special_dovecot)
    with special_dovecot.imaps(USER) as c:
        assert "APPENDLIMIT=307200" in c.capabilities
    m = special_mount(mailfs_bin, special_dovecot, workdir, "appendlimit")
    try:
        big = tmp_path / "toobig.eml"
        big.write_bytes(b"Subject: too big\r\n\r\n" + (b"z" * 78 + b"\r\n") * 5000)
        with pytest.raises(OSError) as e:
            shutil.copyfile(big, os.path.join(m.mountpoint, "Empty", "toobig.eml"))
        assert e.value.errno == errno.EFBIG
        assert server_uids(special_dovecot, "Empty") == []
    finally:
        m.unmount()
