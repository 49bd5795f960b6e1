# SPDX-License-Identifier: GPL-2.0-or-later
"""Privacy (issue 9): mail is private. The mount is closed to other
users, files are 0600 and directories 0700, so is the cache, and the password and
message bodies never reach argv, the environment, /proc/mounts or the -d trace."""

import base64
import os
import re
import stat
import subprocess

import pytest

from conftest import mounted

# A line of the "8-bit body" message's body (corpus.py), and of "Dots at line starts".
BODY_LINES = ("Umlaute:", "guillemets", ".hidden line")


def secret_forms(dovecot, user="alice"):
    """The password and every encoding of it a client could put on the wire."""
    pw = dovecot.users[user]
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    return {
        "password": pw,
        "base64 password (LOGIN)": b64(pw),
        "base64 PLAIN \\0user\\0password": b64(f"\0{user}\0{pw}"),
        "base64 PLAIN user\\0user\\0password": b64(f"{user}\0{user}\0{pw}"),
    }


def assert_no_secret(text, dovecot, where, user="alice"):
    for what, s in secret_forms(dovecot, user).items():
        assert s not in text, f"{what} found in {where}"


def walk(root):
    """(path, lstat) of root and of everything below it, without following links."""
    yield root, os.lstat(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            yield p, os.lstat(p)


def wrong_modes(root):
    """Entries that are neither a 0700 directory nor a 0600 regular file."""
    bad = []
    for p, st in walk(root):
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            ok = mode == 0o700
        elif stat.S_ISREG(st.st_mode):
            ok = mode == 0o600
        else:
            ok = False
        if not ok or st.st_uid != os.getuid():
            bad.append(f"{oct(st.st_mode)} uid {st.st_uid} {p}")
    return bad


def message_file(mountpoint, folder, suffix):
    d = os.path.join(mountpoint, folder)
    names = [n for n in os.listdir(d) if n.endswith(suffix)]
    assert len(names) == 1, (suffix, os.listdir(d))
    return os.path.join(d, names[0])


def as_nobody(*cmd):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "--", *cmd], capture_output=True, text=True, timeout=30)


def use_the_mount(mp):
    """What a user does: list everything, read some messages, read the xattrs."""
    subprocess.run(["ls", "-lR", mp], capture_output=True, check=True, timeout=120)
    for folder, suffix in (("INBOX", "-8-bit_body.eml"), ("INBOX", "-Dots_at_line_starts.eml"),
                           ("INBOX", "-Meeting_notes_for_Tuesday.eml"),
                           ("Archive/2024/Q1", "-Deep_message_0.eml")):
        path = message_file(mp, folder, suffix)
        with open(path, "rb") as f:
            data = f.read()
        assert data.startswith(b"From: ") or b"\r\nFrom: " in data
        subprocess.run(["getfattr", "-d", path], capture_output=True, check=True, timeout=60)
    subprocess.run(["getfattr", "-n", "user.mailfs.status", mp], capture_output=True,
                   check=True, timeout=60)


# -- other users ------------------------------------------------------------------

def assert_closed_to_nobody(m, workdir, root_stat_denied):
    inbox_file = message_file(m.mountpoint, "INBOX", "-Meeting_notes_for_Tuesday.eml")
    # The way there is open to nobody (the workdir is 0755): only the mount refuses.
    r = as_nobody("ls", workdir)
    assert r.returncode == 0, r.stderr
    cmds = [["ls", m.mountpoint], ["cat", inbox_file], ["ls", os.path.join(m.mountpoint, "INBOX")],
            ["stat", inbox_file]]
    if root_stat_denied:
        cmds.append(["stat", m.mountpoint])
    for cmd in cmds:
        r = as_nobody(*cmd)
        assert r.returncode != 0, f"{cmd} succeeded as nobody: {r.stdout}"
        assert "Permission denied" in r.stderr, (cmd, r.stderr)
    # The owner still reads it.
    assert os.listdir(m.mountpoint)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")


@needs_root
def test_other_user_cannot_read_the_mount(mount, workdir):
    m = mount()
    # No allow_other was passed to the kernel: FUSE refuses every other user outright.
    options = mounted(m.mountpoint)[3].split(",")
    assert "allow_other" not in options, options
    assert_closed_to_nobody(m, workdir, root_stat_denied=True)


@needs_root
def test_allow_other_still_checks_modes(mount, workdir):
    """Asked for allow_other, the kernel checks the 0700/0600 modes (default_permissions):
    other users still cannot read the owner's mail."""
    m = mount(options={"allow_other": True})
    options = mounted(m.mountpoint)[3].split(",")
    assert "allow_other" in options and "default_permissions" in options, options
    # As on any file system, the root's own attributes are visible (its parent is 0755);
    # its 0700 mode is what keeps nobody from listing and reading.
    assert_closed_to_nobody(m, workdir, root_stat_denied=False)


# -- modes ------------------------------------------------------------------------

def test_whole_mount_is_0700_dirs_0600_files(mount):
    m = mount()
    entries = list(walk(m.mountpoint))
    assert sum(stat.S_ISREG(st.st_mode) for _, st in entries) > 20
    assert sum(stat.S_ISDIR(st.st_mode) for _, st in entries) > 5
    bad = wrong_modes(m.mountpoint)
    assert not bad, "wrong mode or owner in the mount:\n" + "\n".join(bad)
    st = os.stat(m.mountpoint)
    assert st.st_gid == os.getgid()


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-0755"])
def test_cache_dir_is_0700_and_0600_even_with_umask_0(mount, workdir, request, existing):
    cache = os.path.join(workdir, f"cache-privacy-{request.node.callspec.id}")
    if existing:
        # A cache directory someone made by hand with the usual 0755.
        os.makedirs(os.path.join(cache, "stale"), exist_ok=True)
        os.chmod(cache, 0o755)
    # umask 0 at start: every mode must be set by mailfs itself, not by the umask.
    old = os.umask(0)
    try:
        m = mount(options={"cache_dir": cache})
    finally:
        os.umask(old)
    use_the_mount(m.mountpoint)
    # Walk after the daemon exits, so no temporary file vanishes under the walk.
    m.unmount()
    files = [p for p, st in walk(cache) if stat.S_ISREG(st.st_mode)]
    assert len(files) > 2, files  # bodies were cached: the walk below is not vacuous
    bad = wrong_modes(cache)
    if existing:
        # The stale subdirectory is not mailfs's; the cache directory itself is.
        bad = [b for b in bad if not b.endswith("/stale")]
    assert not bad, "wrong mode or owner in the cache:\n" + "\n".join(bad)


# -- secrets ----------------------------------------------------------------------

def test_no_password_in_ps_mounts_or_environment(mount, dovecot):
    m = mount()
    pid = m.proc.pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode("utf-8", "replace").split("\0")
    assert os.path.basename(argv[0]) == "mailfs"
    assert_no_secret(" ".join(argv), dovecot, "mailfs's argv")
    # What `ps` shows for every process on the machine (a password_command child too).
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True,
                        check=True).stdout
    assert str(pid) in ps
    assert_no_secret(ps, dovecot, "ps output")
    with open("/proc/mounts") as f:
        assert_no_secret(f.read(), dovecot, "/proc/mounts")
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = f.read().decode("utf-8", "replace")
    assert_no_secret(env, dovecot, "mailfs's environment")
    # Threads share the process's argv and environment; check they are all still there.
    assert len(os.listdir(f"/proc/{pid}/task")) >= 1
    assert mounted(m.mountpoint)


@pytest.mark.parametrize("how", ["url", "option"])
def test_password_on_the_command_line_is_refused(mount, dovecot, how):
    secret = "Cmdline-Secret-9"
    if how == "url":
        m = mount(start=False, source=f"imaps://alice:{secret}@127.0.0.1:{dovecot.ports['imaps']}")
    else:
        m = mount(start=False, options={"password": secret})
    os.makedirs(m.mountpoint, exist_ok=True)
    r = subprocess.run(m.command(), capture_output=True, text=True, timeout=30, env=m.env)
    assert r.returncode != 0
    assert not mounted(m.mountpoint)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "password_command" in lines[0] or "password_file" in lines[0], lines[0]
    assert secret not in r.stderr, "the refusal echoes the password"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620], ids=oct)
def test_password_file_readable_by_others_is_refused(mount, dovecot, workdir, mode):
    path = os.path.join(workdir, f"alice-{mode:o}.password")
    with open(path, "w") as f:
        f.write(dovecot.users["alice"] + "\n")
    os.chmod(path, mode)
    m = mount(start=False, options={"password_file": path})
    os.makedirs(m.mountpoint, exist_ok=True)
    r = subprocess.run(m.command(), capture_output=True, text=True, timeout=30, env=m.env)
    assert r.returncode != 0
    assert not mounted(m.mountpoint)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "password_file" in lines[0] and "chmod" in lines[0], lines[0]
    assert_no_secret(r.stderr, dovecot, "the refusal")
    # Nothing reached the server: no login was tried with a file others could read.
    assert os.stat(path).st_mode & 0o777 == mode


# -- the -d trace -----------------------------------------------------------------

def debug_mount(mount, auth):
    return mount(options={"log": "imap", "auth": auth}, args=["-d"])


def finish(m):
    """Unmount a -d mount and check its stderr.

    libfuse's debug output (libfuse 3.14) is "FUSE library version", "INIT" and one
    pair of lines per request ("unique: N, opcode: ...", "unique: N, success" or
    "unique: N, error: -38 (Function not implemented)"); none of it matches
    conftest's BAD_STDERR, so the ordinary check in unmount() applies unchanged."""
    m.unmount()
    return m.stderr()


@pytest.mark.parametrize("auth", ["plain", "login"])
def test_debug_trace_has_no_password(mount, dovecot, auth):
    m = debug_mount(mount, auth)
    use_the_mount(m.mountpoint)
    err = finish(m)
    # The trace is on: protocol lines and libfuse's own debug lines are there...
    assert re.search(r"C: A\d+ ", err), err[-2000:]
    # The login command is traced with its arguments cut off.
    command = "LOGIN" if auth == "login" else "AUTHENTICATE PLAIN"
    assert re.search(rf"C: A\d+ {command} \*\*\*$", err, re.MULTILINE), err[:2000]
    assert "opcode:" in err or "unique:" in err, "libfuse debug output missing with -d"
    # ...and the secret in none of its forms.
    assert_no_secret(err, dovecot, "the -d trace")


def test_debug_trace_has_no_message_body(mount):
    m = debug_mount(mount, "plain")
    path = message_file(m.mountpoint, "INBOX", "-8-bit_body.eml")
    with open(path, "rb") as f:
        data = f.read()
    assert "Umlaute:".encode() in data
    path = message_file(m.mountpoint, "INBOX", "-Dots_at_line_starts.eml")
    with open(path, "rb") as f:
        assert b".hidden line" in f.read()
    err = finish(m)
    assert re.search(r"C: A\d+ UID FETCH .*BODY\.PEEK\[\]", err), \
        "no body fetch in the trace:\n" + err[-3000:]
    for line in BODY_LINES:
        found = [l for l in err.splitlines() if line in l]
        assert not found, f"message body line {line!r} in the -d trace:\n" + "\n".join(found)
