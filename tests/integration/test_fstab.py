# SPDX-License-Identifier: GPL-2.0-or-later
"""fstab (issue 10, mailfs(1) FSTAB): `mount -t fuse.mailfs` goes through mount.fuse3,
which runs `mailfs SOURCE MOUNTPOINT -o OPTS` from PATH without -f: mailfs must
take the generic fstab options, mount, daemonize, serve, and exit once unmounted."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import mounted, password_file, sanitizer_env

pytestmark = pytest.mark.skipif(shutil.which("mount.fuse3") is None and
                                not os.path.exists("/sbin/mount.fuse3"),
                                reason="mount.fuse3 not installed")

# What an fstab line carries besides mailfs's own keys.
FSTAB_OPTS = "noauto,user,_netdev,nofail,x-systemd.automount"


def daemons(marker):
    """pids of mailfs processes whose argv holds marker (a path unique to the test)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"mailfs" and \
                any(marker.encode() in a for a in argv):
            pids.append(int(pid))
    return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class FstabMount:
    def __init__(self, build_dir, workdir, name):
        self.base = tempfile.mkdtemp(prefix=f"fstab-{name}-", dir=workdir)
        self.mountpoint = os.path.join(self.base, "mnt")
        os.mkdir(self.mountpoint)
        self.cache = os.path.join(self.base, "cache")
        self.env = sanitizer_env()
        # mount.fuse3 runs the subtype's name, "mailfs", through /bin/sh: from PATH.
        self.env["PATH"] = os.path.join(build_dir, "src") + ":" + self.env.get("PATH", "")
        self.pid = None

    def mount(self, source, opts):
        """What mount(8) runs for `mount -t fuse.mailfs -o OPTS SOURCE MOUNTPOINT`.

        Called directly, because mount(8) drops PATH from the helper's
        environment (util-linux 2.38): its /bin/sh then finds `mailfs` only in
        the standard directories, not in our build (test_mount8 covers that).
        """
        mount_fuse = shutil.which("mount.fuse3") or "/sbin/mount.fuse3"
        return subprocess.run([mount_fuse, source, self.mountpoint, "-o", "rw," + opts,
                               "-t", "fuse.mailfs"],
                              capture_output=True, text=True, env=self.env, timeout=60,
                              stdin=subprocess.DEVNULL, cwd="/")

    def daemon(self):
        pids = daemons(self.base)
        assert len(pids) == 1, f"expected one mailfs daemon, found {pids}"
        self.pid = pids[0]
        return self.pid

    def unmount_and_wait(self, timeout=30):
        r = subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True, text=True)
        assert r.returncode == 0, f"fusermount3 -u: {r.stderr}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(self.pid):
                return
            time.sleep(0.05)
        pytest.fail(f"mailfs (pid {self.pid}) did not exit within {timeout}s of the unmount")

    def cleanup(self):
        subprocess.run(["fusermount3", "-uz", self.mountpoint], capture_output=True)
        for pid in daemons(self.base):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def fstab(build_dir, mailfs_bin, workdir, request):
    made = []

    def make():
        m = FstabMount(build_dir, workdir, request.node.name[:30])
        made.append(m)
        return m

    yield make
    for m in made:
        m.cleanup()


def check_mount_serves_and_exits(m, r, dovecot):
    assert r.returncode == 0, f"mount failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    fields = mounted(m.mountpoint)
    assert fields, "mount returned 0 but nothing is mounted"
    assert fields[2] == "fuse.mailfs"
    # mount returned, so mailfs went to the background: a daemon, not mount's child.
    pid = m.daemon()
    assert os.getppid() != pid
    names = os.listdir(m.mountpoint)
    assert "INBOX" in names
    assert any(n.endswith(".eml") for n in os.listdir(os.path.join(m.mountpoint, "INBOX")))
    assert dovecot.users["alice"] not in open("/proc/mounts").read()
    m.unmount_and_wait()
    assert not mounted(m.mountpoint)


def test_mount_url_with_fstab_options(fstab, dovecot, workdir):
    m = fstab()
    opts = (f"ca_file={dovecot.ca},password_file={password_file(workdir, dovecot, 'alice')},"
            f"cache_dir={m.cache},{FSTAB_OPTS}")
    r = m.mount(dovecot.url("alice"), opts)
    check_mount_serves_and_exits(m, r, dovecot)


def test_mount_account_name_from_config(fstab, dovecot, workdir):
    """fstab's first field is an account NAME; the config is found through the
    environment mount(8) and mount.fuse3 pass on (kept as we run as root)."""
    m = fstab()
    home = os.path.join(m.base, "home")
    conf_dir = os.path.join(home, ".config", "mailfs")
    os.makedirs(conf_dir)
    with open(os.path.join(conf_dir, "mailfs.conf"), "w") as f:
        f.write(f"[account test]\nurl = {dovecot.url('alice')}\n"
                f"ca_file = {dovecot.ca}\n"
                f"password_file = {password_file(workdir, dovecot, 'alice')}\n")
    m.env["HOME"] = home
    m.env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    r = m.mount("test", f"cache_dir={m.cache},{FSTAB_OPTS}")
    check_mount_serves_and_exits(m, r, dovecot)


def test_mount_drop_privileges_dev_fd(fstab, dovecot, workdir):
    """-o drop_privileges: mount.fuse3 opens /dev/fuse and mounts itself, then
    runs mailfs, without capabilities, on the mountpoint "/dev/fd/N"."""
    m = fstab()
    opts = (f"ca_file={dovecot.ca},password_file={password_file(workdir, dovecot, 'alice')},"
            f"cache_dir={m.cache},drop_privileges,{FSTAB_OPTS}")
    r = m.mount(dovecot.url("alice"), opts)
    check_mount_serves_and_exits(m, r, dovecot)


# Runs inside a private mount namespace: mount(8) drops PATH before it runs
# mount.fuse3, whose /bin/sh then looks for `mailfs` in the default PATH only;
# so put the build's binary in /usr/local/bin there (and only there).
MOUNT8_HELPER = r"""
import os, subprocess, sys, time
binary, bindir, source, mp, opts = sys.argv[1:]
os.symlink(binary, os.path.join(bindir, "mailfs"))
subprocess.run(["mount", "--bind", bindir, "/usr/local/bin"], check=True)
r = subprocess.run(["mount", "-t", "fuse.mailfs", "-o", opts, source, mp],
                   capture_output=True, text=True, cwd="/")
if r.returncode != 0:
    sys.exit(f"mount failed ({r.returncode}): {r.stderr}")
if not any(l.split()[1] == mp and l.split()[2] == "fuse.mailfs" for l in open("/proc/mounts")):
    sys.exit("mount returned 0 but nothing is mounted")
if not any(n.endswith(".eml") for n in os.listdir(os.path.join(mp, "INBOX"))):
    sys.exit("no messages in INBOX")
pids = []
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    if os.path.basename(argv[0]) == b"mailfs" and mp.encode() in argv:
        pids.append(p)
r = subprocess.run(["fusermount3", "-u", mp], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"fusermount3 -u: {r.stderr}")
print("ok", *pids)
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare not installed")
def test_mount8_account_name_from_config(fstab, dovecot, workdir, mailfs_bin):
    """The whole chain: mount(8) -> mount.fuse3 -> /bin/sh -> mailfs, for an fstab
    NAME whose config is found through XDG_CONFIG_HOME (mount(8) drops HOME and
    PATH from the helper's environment, but keeps XDG_CONFIG_HOME)."""
    m = fstab()
    conf_home = os.path.join(m.base, "config")
    os.makedirs(os.path.join(conf_home, "mailfs"))
    with open(os.path.join(conf_home, "mailfs", "mailfs.conf"), "w") as f:
        f.write(f"[account test]\nurl = {dovecot.url('alice')}\n"
                f"ca_file = {dovecot.ca}\n"
                f"password_file = {password_file(workdir, dovecot, 'alice')}\n"
                f"cache_dir = {m.cache}\n")
    m.env["XDG_CONFIG_HOME"] = conf_home
    bindir = os.path.join(m.base, "bin")
    os.mkdir(bindir)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                        "-c", MOUNT8_HELPER, os.path.abspath(mailfs_bin), bindir, "test",
                        m.mountpoint, FSTAB_OPTS],
                       capture_output=True, text=True, env=m.env, timeout=120,
                       stdin=subprocess.DEVNULL)
    out = r.stdout.split()
    assert r.returncode == 0 and out[:1] == ["ok"], r.stdout + r.stderr
    assert len(out) == 2, f"expected one mailfs daemon on the mountpoint, found {out[1:]}"
    # The daemon outlives the helper; it must go once unmounted.
    m.pid = int(out[1])
    deadline = time.monotonic() + 30
    while alive(m.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(m.pid), "mailfs did not exit within 30s of the unmount"
