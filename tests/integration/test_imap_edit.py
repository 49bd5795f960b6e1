# SPDX-License-Identifier: GPL-2.0-or-later
"""Changing a message with everyday tools, and new files written the way
shells write them (mailfs(1), WRITING).

Writing a message file replaces the message: the new bytes are appended
with the old flags and INTERNALDATE and the old message goes to the Trash.
Every tool ends in one of two ways: (a) the folder holds exactly one
message, with the edited bytes, its flags and date kept, and the Trash got
the old one; or (b) the tool fails and the server is exactly as before.
Each test checks the server with its own IMAP client, in a folder of its
own in dave's account (the write tests' user), removed afterwards with what
the test put into the Trash."""

import errno
import os
import pty
import re
import select
import subprocess
import time

import pytest

import corpus
import mailserver
from conftest import Mount, password_file, node_tag

USER = "dave"
FOLDER = "Edit Tests"
FLAGS = ["$Label1", "\\Flagged", "\\Seen"]
DATE = "01-Jan-2020 10:00:00 +0000"
ORIGINAL = (b"From: a@example.org\r\nSubject: Quarterly report\r\n"
            b"Message-ID: <edit-1@mailfs.test>\r\n\r\nThe Quarterly numbers.\r\n")
# s/Quarterly/QUARTERLY/ on each line: same size, same Message-ID.
EDITED = ORIGINAL.replace(b"Quarterly", b"QUARTERLY")
NEW = b"From: a@example.org\nSubject: replaced\n\nnew body\n"
NEW_CRLF = NEW.replace(b"\n", b"\r\n")


def q(name):
    return corpus._q(corpus.mutf7_encode(name))


def messages(server, folder):
    """{uid: (bytes, sorted flags without \\Recent, INTERNALDATE)} of folder."""
    out = {}
    with server.imaps(USER) as c:
        typ, _ = c.select(q(folder), readonly=True)
        assert typ == "OK", folder
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
                date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                out[uid] = (item[1], sorted(f for f in flags if f != "\\Recent"), date)
    return out


def prepare(server, body=ORIGINAL):
    """FOLDER with one message (FLAGS, DATE); a Trash. Returns the Trash UIDs before."""
    with server.imaps(USER) as c:
        typ, lines = c.list()
        names = {corpus.mutf7_decode(l.decode().rsplit(' "/" ', 1)[1].strip('"'))
                 for l in lines if l}
        if FOLDER in names:
            c.delete(q(FOLDER))
        if "Trash" not in names:
            assert c.create("Trash")[0] == "OK"
        assert c.create(q(FOLDER))[0] == "OK"
        if body is not None:
            typ, _ = c.append(q(FOLDER), "(" + " ".join(FLAGS) + ")", f'"{DATE}"', body)
            assert typ == "OK"
    return set(messages(server, "Trash"))


def cleanup(server, trash_before):
    with server.imaps(USER) as c:
        c.delete(q(FOLDER))
        c.select("Trash")
        typ, data = c.uid("SEARCH", None, "ALL")
        added = [u for u in data[0].split() if int(u) not in trash_before]
        if added:
            c.uid("STORE", b",".join(added).decode(), "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()


@pytest.fixture
def edit(dovecot, mount):
    """A mount of dave's account with FOLDER holding one message.

    Yields (mount, path of the message, its UID, Trash UIDs before)."""
    trash_before = prepare(dovecot)
    try:
        (uid,) = messages(dovecot, FOLDER)
        m = mount(user=USER)
        yield m, message_path(m, uid), uid, trash_before
    finally:
        cleanup(dovecot, trash_before)


@pytest.fixture
def empty(dovecot, mount):
    """A mount of dave's account with FOLDER empty. Yields (mount, folder path)."""
    trash_before = prepare(dovecot, body=None)
    try:
        m = mount(user=USER)
        yield m, os.path.join(m.mountpoint, FOLDER)
    finally:
        cleanup(dovecot, trash_before)


def message_path(m, uid):
    d = os.path.join(m.mountpoint, FOLDER)
    names = [n for n in os.listdir(d) if n.startswith(f"{uid}-") or n == f"{uid}.eml"]
    assert len(names) == 1, os.listdir(d)
    return os.path.join(d, names[0])


def assert_replaced(server, old_uid, trash_before, want):
    """(a): one message in FOLDER, want's bytes, flags and date kept; the old
    one in the Trash, nothing else changed."""
    got = messages(server, FOLDER)
    assert len(got) == 1, got
    ((uid, (body, flags, date)),) = got.items()
    assert body == want
    assert (flags, date) == (FLAGS, DATE)
    assert uid != old_uid
    trash = messages(server, "Trash")
    added = [v for u, v in trash.items() if u not in trash_before]
    assert [b for b, _, _ in added] == [ORIGINAL]


def assert_unchanged(server, old_uid, trash_before):
    """(b): the server exactly as before."""
    assert messages(server, FOLDER) == {old_uid: (ORIGINAL, FLAGS, DATE)}
    assert set(messages(server, "Trash")) == trash_before


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


# -- (1) editing a message -------------------------------------------------------------

def test_sed_i(edit, dovecot):
    m, path, uid, trash = edit
    r = run(["sed", "-i", "s/Quarterly/QUARTERLY/", path])
    assert r.returncode == 0, r.stderr
    assert_replaced(dovecot, uid, trash, EDITED)
    # sed's temporary (a visible name, appended at its close) left nothing.
    assert len(os.listdir(os.path.join(m.mountpoint, FOLDER))) == 1


def test_sed_i_changing_the_size(edit, dovecot):
    """sed's temporary is appended at its close (another size: not a copy
    the Message-ID check finds), then replaces the message and goes."""
    m, path, uid, trash = edit
    r = run(["sed", "-i", "s/Quarterly/Quarterly (revised)/", path])
    assert r.returncode == 0, r.stderr
    assert_replaced(dovecot, uid, trash, ORIGINAL.replace(b"Quarterly", b"Quarterly (revised)"))


def test_perl_pi(edit, dovecot):
    m, path, uid, trash = edit
    r = run(["perl", "-pi", "-e", "s/Quarterly/QUARTERLY/", path])
    assert r.returncode == 0, r.stderr
    assert_replaced(dovecot, uid, trash, EDITED)


VIM_SETTINGS = {
    "default": [],
    "u-none": ["-u", "NONE"],
    # backupskip= : the mount is under /tmp, which vim otherwise never backs up.
    "backupcopy-yes": ["-u", "NONE", "-c", "set nocompatible backupskip= backupcopy=yes"],
    "backupcopy-no": ["-u", "NONE", "-c", "set nocompatible backupskip= backupcopy=no"],
    "backupcopy-auto": ["-u", "NONE", "-c", "set nocompatible backupskip= backupcopy=auto"],
    "backup-kept": ["-u", "NONE", "-c", "set nocompatible backupskip= backup backupcopy=no"],
}


@pytest.mark.parametrize("write", ["w", "w!"])
@pytest.mark.parametrize("settings", sorted(VIM_SETTINGS))
def test_vim(edit, dovecot, tmp_path, settings, write):
    m, path, uid, trash = edit
    env = dict(os.environ, HOME=str(tmp_path))
    r = run(["vim", "-es", "-i", "NONE"] + VIM_SETTINGS[settings] +
            ["-c", "%s/Quarterly/QUARTERLY/", "-c", write, "-c", "q", path], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_replaced(dovecot, uid, trash, EDITED)
    # Neither the swap file nor the backup became a message.
    names = os.listdir(os.path.join(m.mountpoint, FOLDER))
    assert len(names) == 1 and not names[0].endswith("~"), names


class Terminal:
    """A program on a pseudo-terminal, driven as a person types: each key
    waits for the text it answers to appear on the screen."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the program, on the terminal
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.screen = b""

    def wait_for(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never shown; the screen had:\n{self.screen[-2000:]!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.fd, 65536)
                except OSError:  # the program ended
                    break
        # What came after the text answers the next key.
        self.screen = self.screen[self.screen.index(text) + len(text):]

    def type(self, keys):
        os.write(self.fd, keys)

    def exit_status(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.read(self.fd, 65536)  # keep its output flowing
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("the program did not end")


def test_nano(edit, dovecot, tmp_path):
    """nano's replace-all, then ^O to write the file out (in place) and ^X."""
    m, path, uid, trash = edit
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm", LANG="C.UTF-8")
    t = Terminal(["nano", "--ignorercfiles", path], env)
    t.wait_for(b"Read ")
    # The whole help lines drawn: nano has the terminal in raw mode (^\\ is
    # otherwise the QUIT character, and lost).
    t.wait_for(b"Paste")
    t.type(b"\x1c")  # ^\\ : replace
    t.wait_for(b"Search (to replace)")
    t.type(b"Quarterly\r")
    t.wait_for(b"Replace with")
    t.type(b"QUARTERLY\r")
    t.wait_for(b"this instance?")
    t.type(b"a")  # all
    t.wait_for(b"occurrence")
    t.type(b"\x0f")  # ^O: write out
    t.wait_for(b"to Write")
    t.type(b"\r")
    t.wait_for(b"Wrote")
    t.type(b"\x18")  # ^X
    assert t.exit_status() == 0
    assert_replaced(dovecot, uid, trash, EDITED)


def test_cat_redirect_over_a_message(edit, dovecot, tmp_path):
    m, path, uid, trash = edit
    new = tmp_path / "new.eml"
    new.write_bytes(NEW)
    r = run(["sh", "-c", 'cat "$1" > "$2"', "sh", str(new), path])
    assert r.returncode == 0, r.stderr
    assert_replaced(dovecot, uid, trash, NEW_CRLF)


def test_python_open_w(edit, dovecot):
    m, path, uid, trash = edit
    with open(path, "w") as f:
        f.write(NEW.decode())
    assert_replaced(dovecot, uid, trash, NEW_CRLF)


def test_python_read_modify_write(edit, dovecot):
    """r+ without truncation: the copy starts with the message's bytes."""
    m, path, uid, trash = edit
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.replace(b"Quarterly", b"QUARTERLY"))
    assert_replaced(dovecot, uid, trash, EDITED)


def test_cp_over_a_message(edit, dovecot, tmp_path):
    m, path, uid, trash = edit
    new = tmp_path / "other.eml"
    new.write_bytes(NEW)
    r = run(["cp", str(new), path])
    assert r.returncode == 0, r.stderr
    assert_replaced(dovecot, uid, trash, NEW_CRLF)


def test_edit_with_delete_expunge_leaves_the_trash_alone(dovecot, mount, tmp_path):
    trash = prepare(dovecot)
    try:
        (uid,) = messages(dovecot, FOLDER)
        m = mount(user=USER, options={"delete": "expunge"})
        r = run(["sed", "-i", "s/Quarterly/QUARTERLY/", message_path(m, uid)])
        assert r.returncode == 0, r.stderr
        got = messages(dovecot, FOLDER)
        assert list(got.values()) == [(EDITED, FLAGS, DATE)]
        assert set(messages(dovecot, "Trash")) == trash
    finally:
        cleanup(dovecot, trash)


def test_opened_for_writing_but_unchanged_changes_nothing(edit, dovecot):
    m, path, uid, trash = edit
    with open(path, "r+b") as f:
        assert f.read() == ORIGINAL
    assert_unchanged(dovecot, uid, trash)


def test_nul_in_an_edit_fails_and_changes_nothing(edit, dovecot, tmp_path):
    m, path, uid, trash = edit
    new = tmp_path / "nul.eml"
    new.write_bytes(b"Subject: x\n\nNUL \0 here\n")
    r = run(["cp", str(new), path])
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert_unchanged(dovecot, uid, trash)


def test_truncating_a_message_to_nothing_fails(edit, dovecot):
    m, path, uid, trash = edit
    with pytest.raises(OSError) as e:
        with open(path, "w"):
            pass
    assert e.value.errno == errno.EINVAL
    assert_unchanged(dovecot, uid, trash)


# -- (2) new files ---------------------------------------------------------------------

def new_messages(server):
    return [b for b, _, _ in messages(server, FOLDER).values()]


def test_redirect_then_append_is_one_message(empty, dovecot):
    m, d = empty
    x = os.path.join(d, "x.eml")
    r = run(["bash", "-c", 'printf "Subject: x\\nMessage-ID: <1@x>\\n" > "$1"; '
             'printf "\\nbody\\n" >> "$1"', "bash", x])
    assert r.returncode == 0, r.stderr
    assert new_messages(dovecot) == [b"Subject: x\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"]


def test_writes_across_several_opens_are_one_message(empty, dovecot):
    m, d = empty
    x = os.path.join(d, "x.eml")
    with open(x, "w") as f:
        f.write("Subject: parts\n")
    for part in ("To: b@example.org\n", "\n", "body\n"):
        with open(x, "a") as f:
            f.write(part)
    assert new_messages(dovecot) == [b"Subject: parts\r\nTo: b@example.org\r\n\r\nbody\r\n"]


def test_text_without_a_header_is_appended(empty, dovecot):
    m, d = empty
    r = run(["bash", "-c", 'printf "hello\\n" > "$1"', "bash", os.path.join(d, "x.eml")])
    assert r.returncode == 0, r.stderr
    assert new_messages(dovecot) == [b"hello\r\n"]


def test_nul_byte_fails_the_write(empty, dovecot):
    m, d = empty
    r = run(["bash", "-c", 'printf "Subject: x\\n\\nzero \\0 byte\\n" > "$1"', "bash",
             os.path.join(d, "x.eml")])
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert new_messages(dovecot) == []


def test_touch_sends_nothing(empty, dovecot):
    m, d = empty
    x = os.path.join(d, "new.eml")
    r = run(["touch", x])
    assert r.returncode == 0, r.stderr
    assert new_messages(dovecot) == []
    assert "new.eml" not in os.listdir(d)
    # Written later, it is sent then.
    with open(x, "a") as f:
        f.write("Subject: later\n")
    assert new_messages(dovecot) == [b"Subject: later\r\n"]


def test_zero_byte_cp_sends_nothing_every_time(empty, dovecot, tmp_path):
    m, d = empty
    zero = tmp_path / "zero.eml"
    zero.write_bytes(b"")
    for _ in range(2):
        r = run(["cp", str(zero), os.path.join(d, "x.eml")])
        assert r.returncode == 0, r.stderr
    assert new_messages(dovecot) == []


# -- refusals by the server: the tool fails, the server is as before --------------------

@pytest.fixture(scope="module")
def quota_dovecot(workdir):
    """A dovecot of its own with a 64 KiB quota."""
    server = mailserver.Dovecot(
        os.path.join(workdir, "dovecot-edit-quota"),
        imap_extra="  mail_plugins = $mail_plugins quota imap_quota",
        extra="mail_plugins = $mail_plugins quota\n"
              "plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=64K\n}\n")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def full(quota_dovecot, mailfs_bin, workdir, request):
    """FOLDER with the message in an account the quota leaves ~4 KiB in."""
    trash_before = prepare(quota_dovecot)
    with quota_dovecot.imaps(USER) as c:
        c.append(q(FOLDER), None, None,
                 b"Subject: filler\r\n\r\n" + (b"f" * 78 + b"\r\n") * 700)
    (uid,) = [u for u, v in messages(quota_dovecot, FOLDER).items() if v[0] == ORIGINAL]
    name = node_tag(request)
    opts = {"ca_file": quota_dovecot.ca,
            "password_file": password_file(workdir, quota_dovecot, USER),
            "cache_dir": os.path.join(workdir, "cache-edit-quota-" + name)}
    m = Mount(mailfs_bin, quota_dovecot.url(USER), os.path.join(workdir, "mnt-eq-" + name),
              opts, workdir)
    try:
        m.start()
        yield m, message_path(m, uid), uid, trash_before
        m.unmount()
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.kill()
        cleanup(quota_dovecot, trash_before)


def folder_unchanged(server, uid, trash_before):
    got = messages(server, FOLDER)
    assert got[uid] == (ORIGINAL, FLAGS, DATE)
    assert len(got) == 2  # the message and the filler
    assert set(messages(server, "Trash")) == trash_before


BIG = b"Subject: too big for the quota\n\n" + (b"b" * 78 + b"\n") * 200


@pytest.mark.parametrize("tool", ["sed", "vim", "cat", "cp", "python", "fsync"])
def test_refused_edit_fails_and_changes_nothing(full, quota_dovecot, tmp_path, tool):
    m, path, uid, trash = full
    big = tmp_path / "big.eml"
    big.write_bytes(BIG)
    if tool == "sed":
        r = run(["sed", "-i", "s/Quarterly/" + "Q" * 16000 + "/", path])
    elif tool == "vim":
        r = run(["vim", "-es", "-i", "NONE", "-u", "NONE", "-c", "%s/Quarterly/" + "Q" * 16000 + "/",
                 "-c", "wq", path], env=dict(os.environ, HOME=str(tmp_path)))
    elif tool == "cat":
        r = run(["sh", "-c", 'cat "$1" > "$2"', "sh", str(big), path])
    elif tool == "cp":
        r = run(["cp", str(big), path])
    if tool in ("python", "fsync"):
        with pytest.raises(OSError) as e:
            with open(path, "wb") as f:
                f.write(BIG)
                if tool == "fsync":
                    f.flush()
                    os.fsync(f.fileno())
        assert e.value.errno == errno.EDQUOT
    else:
        assert r.returncode != 0, (r.stdout, r.stderr)
    folder_unchanged(quota_dovecot, uid, trash)
    assert re.search(r"APPEND to .* refused: \[OVERQUOTA\]", m.stderr())
