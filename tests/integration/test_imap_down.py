# SPDX-License-Identifier: GPL-2.0-or-later
"""A server that hangs or goes away costs one `timeout`, not one per request:
the first operation that waits for it fails with EIO after `timeout`, the
account is down from then on (what needs the server fails at once, the
status says since when and why), a background reconnect brings it up again
without a remount, and unmount never waits for the server.

Nothing asserts a time: the tests count the timeouts in the daemon's log,
and bound each operation only by a generous guard against a hang."""

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import corpus
import mailserver
from conftest import Mount, ctrl_c_able, password_file, wait_for

TIMEOUT = 3
# A guard against hanging, not a measurement: three timeouts and then some.
HANG_GUARD = 3 * TIMEOUT + 10
TIMED_OUT = re.compile(r"timed out|no progress|no answer within")
ALLOWED = [r"warning: .*(timed out|is down|refused|closed|abandoned|no answer|"
           r"reset|push for|retrying)"]


@pytest.fixture(scope="module")
def server(workdir):
    s = mailserver.Dovecot(os.path.join(workdir, "dovecot-down"))
    s.start()
    with s.imaps("alice") as c:
        corpus.seed(c, corpus.build(include_pyemail=False))
    yield s
    try:
        s.thaw()
    except Exception:
        pass
    s.stop()


def mount_at(mailfs_bin, server, workdir, name, url=None, **options):
    opts = {"ca_file": server.ca, "password_file": password_file(workdir, server, "alice"),
            "cache_dir": os.path.join(workdir, "cache-down-" + name),
            "timeout": TIMEOUT, "refresh": 3600, "prefetch": 0}
    opts.update(options)
    m = Mount(mailfs_bin, url or server.url("alice"), os.path.join(workdir, "mnt-down-" + name),
              opts, workdir)
    return m.start()


def run(*cmd):
    """A command the way a user runs it; its result, or a failure if it hangs."""
    try:
        return subprocess.run(cmd, capture_output=True, timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd} did not return within {HANG_GUARD} s (timeout={TIMEOUT})")


def assert_eio(r):
    assert r.returncode != 0, r
    assert b"Input/output error" in r.stderr, r.stderr


def status(m):
    r = subprocess.run(["getfattr", "-n", "user.mailfs.status", "--only-values", m.mountpoint],
                       capture_output=True, text=True, timeout=HANG_GUARD)
    return r.stdout


def stacks(pid):
    """What a daemon that does not exit is waiting for, for the failure message."""
    if not shutil.which("gdb"):
        return "(no gdb to show the threads)"
    r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                       capture_output=True, text=True, timeout=60)
    return "\n".join(l for l in r.stdout.splitlines() if l.startswith(("#", "Thread")))


def wait_refused(port):
    """dovecot's login processes may outlive its master for a moment and
    answer "server shutting down": wait until the port refuses."""
    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    wait_for(refused, 30, f"port {port} to refuse connections")


def read_or_none(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def timeouts_logged(m):
    return [l for l in m.stderr().splitlines() if TIMED_OUT.search(l)]


def server_body(server, folder, name):
    uid = name.split("-", 1)[0].split(".", 1)[0]
    with server.imaps("alice") as c:
        c.select(folder, readonly=True)
        return c.uid("FETCH", uid, "(BODY.PEEK[])")[1][0][1]


def test_frozen_server_costs_one_timeout(mailfs_bin, server, workdir):
    """dovecot stopped with SIGSTOP: the first `ls` of a folder never listed
    waits one timeout and fails; `cat` of an uncached message and `getfattr`
    of headers not fetched yet then fail at once; after SIGCONT the mount
    comes back by itself."""
    m = mount_at(mailfs_bin, server, workdir, "frozen")
    try:
        inbox = os.path.join(m.mountpoint, "INBOX")
        names = sorted(os.listdir(inbox))
        assert "state: up" in status(m)
        server.freeze()

        assert_eio(run("ls", os.path.join(m.mountpoint, "Archive")))
        assert len(timeouts_logged(m)) == 1, m.stderr()
        st = status(m)
        assert "state: down since" in st and "down_reason:" in st, st

        assert_eio(run("cat", os.path.join(inbox, names[0])))
        assert_eio(run("getfattr", "-n", "user.mail.subject", os.path.join(inbox, names[1])))
        assert_eio(run("ls", os.path.join(m.mountpoint, "Sent")))
        # Fail-fast: no further wait for the server, so no further timeout.
        assert len(timeouts_logged(m)) == 1, m.stderr()
        # What is known still answers.
        assert sorted(os.listdir(inbox)) == names

        server.thaw()
        wait_for(lambda: "state: up" in status(m), 90, "the account to come up again")
        with open(os.path.join(inbox, names[0]), "rb") as f:
            assert f.read() == server_body(server, "INBOX", names[0])
        assert os.listdir(os.path.join(m.mountpoint, "Archive"))
        m.unmount(allowed=ALLOWED)
    finally:
        server.thaw()
        if m.proc.poll() is None:
            m.kill()


def test_unmount_while_frozen(mailfs_bin, server, workdir):
    """The server hangs and the account is down, its reconnect waiting in a
    TLS handshake the frozen server never answers: unmount does not wait
    for that handshake (timeout=20, the daemon must be gone well before)."""
    m = mount_at(mailfs_bin, server, workdir, "frozen-unmount", timeout=20)
    try:
        os.listdir(os.path.join(m.mountpoint, "INBOX"))
        server.freeze()
        with pytest.raises(OSError) as e:
            os.listdir(os.path.join(m.mountpoint, "Archive"))
        assert e.value.errno == errno.EIO
        # The reconnect starts 1 s after the account went down.
        wait_for(lambda: "connect_failures: 0" not in status(m) or
                 time.sleep(1.5) is None, 30, "the reconnect to start")
        r = subprocess.run(["fusermount3", "-u", m.mountpoint], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        try:
            rc = m.proc.wait(15)  # the handshake alone would wait 20 s
        except subprocess.TimeoutExpired:
            pytest.fail("mailfs did not exit within 15 s of unmount while the server hangs:\n" +
                        stacks(m.proc.pid))
        assert rc == 0, m.stderr()
        m.check_stderr(ALLOWED)
    finally:
        server.thaw()
        if m.proc.poll() is None:
            m.kill()


def test_killed_server(mailfs_bin, server, workdir):
    """dovecot stopped (connections refused): EIO at once, no timeout at all,
    down in the status; started again, the mount reads without a remount."""
    # No push watcher: it connects again the moment dovecot cuts its
    # connection, and that connect can meet a login process that accepts
    # while it shuts down and never answers (a real hang, logged as one),
    # before the port refuses. What is tested starts once it refuses.
    m = mount_at(mailfs_bin, server, workdir, "killed", idle="no")
    try:
        inbox = os.path.join(m.mountpoint, "INBOX")
        names = sorted(os.listdir(inbox))
        server.stop()
        wait_refused(server.ports["imaps"])
        assert_eio(run("cat", os.path.join(inbox, names[2])))
        st = status(m)
        assert "state: down since" in st and "down_reason: " in st, st
        assert_eio(run("getfattr", "-n", "user.mail.subject", os.path.join(inbox, names[3])))
        assert_eio(run("ls", os.path.join(m.mountpoint, "Archive")))
        assert timeouts_logged(m) == [], m.stderr()
        server.start()
        wait_for(lambda: "state: up" in status(m), 90, "the account to come up again")
        with open(os.path.join(inbox, names[2]), "rb") as f:
            assert f.read() == server_body(server, "INBOX", names[2])
        m.unmount(allowed=ALLOWED)
    finally:
        if server.proc is None:
            server.start()
        if m.proc.poll() is None:
            m.kill()


class SwitchProxy:
    """A TCP proxy in front of the server with three modes: "forward",
    "refuse" (nothing listens: connection refused) and "silent" (accepts
    and never says a word: a TLS handshake that never completes). Changing
    mode cuts the connections it forwards."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.mode = None
        self.listener = None
        self.conns = []
        self.silent = []  # accepted in "silent" mode
        self.lock = threading.Lock()
        self.set_mode("forward")

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []
            self.silent = []
            if mode == "refuse":
                if self.listener:
                    self.listener.close()
                    self.listener = None
                return
            if self.listener is None:
                ls = socket.socket()
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind(("127.0.0.1", self.port))
                ls.listen(16)
                self.listener = ls
                threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with self.lock:
                if self.listener is not ls:
                    c.close()
                    return
                self.conns.append(c)
                if self.mode == "silent":
                    self.silent.append(c)
                    continue
                try:
                    u = socket.create_connection(self.target)
                except OSError:
                    c.close()
                    continue
                self.conns.append(u)
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def closed_by_client(self):
        """How many connections accepted in "silent" mode the client closed."""
        n = 0
        with self.lock:
            for c in self.silent:
                try:
                    while True:
                        data = c.recv(65536, socket.MSG_DONTWAIT)  # its ClientHello
                        if not data:
                            n += 1
                            break
                except BlockingIOError:
                    pass
                except OSError:
                    n += 1
        return n

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.set_mode("refuse")


@pytest.fixture
def proxy(server):
    p = SwitchProxy(server.ports["imaps"])
    yield p
    p.close()


def test_tls_handshake_that_never_completes(mailfs_bin, server, workdir, proxy):
    """Connections cut, and new ones accepted but never answered: the first
    read waits one timeout (the new connection's TLS handshake), the next
    fail at once; unmount abandons the reconnect hanging in its handshake."""
    url = f"imaps://alice@localhost:{proxy.port}"
    m = mount_at(mailfs_bin, server, workdir, "silent", url=url)
    try:
        inbox = os.path.join(m.mountpoint, "INBOX")
        names = sorted(os.listdir(inbox))
        proxy.set_mode("silent")
        assert_eio(run("cat", os.path.join(inbox, names[4])))
        assert len(timeouts_logged(m)) == 1, m.stderr()
        assert "state: down since" in status(m)
        assert_eio(run("cat", os.path.join(inbox, names[5])))
        assert_eio(run("getfattr", "-n", "user.mail.subject", os.path.join(inbox, names[6])))
        assert len(timeouts_logged(m)) == 1, m.stderr()

        proxy.set_mode("forward")
        wait_for(lambda: "state: up" in status(m), 90, "the account to come up again")
        with open(os.path.join(inbox, names[4]), "rb") as f:
            assert f.read() == server_body(server, "INBOX", names[4])
        m.unmount(allowed=ALLOWED)
    finally:
        if m.proc.poll() is None:
            m.kill()


def test_unmount_abandons_a_hanging_reconnect(mailfs_bin, server, workdir, proxy):
    """Down after refused connections; the reconnect then meets a server
    that accepts and says nothing, with a 60 s timeout: unmount does not
    wait for that handshake."""
    url = f"imaps://alice@localhost:{proxy.port}"
    m = mount_at(mailfs_bin, server, workdir, "silent-unmount", url=url, timeout=60)
    try:
        inbox = os.path.join(m.mountpoint, "INBOX")
        names = sorted(os.listdir(inbox))
        proxy.set_mode("refuse")
        assert_eio(run("cat", os.path.join(inbox, names[7])))
        assert "state: down since" in status(m)
        proxy.set_mode("silent")
        # The reconnect (1 s, then 2 s after a failure) is now in its handshake.
        wait_for(lambda: proxy.conns, 30, "the reconnect to reach the proxy")
        r = subprocess.run(["fusermount3", "-u", m.mountpoint], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        try:
            rc = m.proc.wait(30)  # half the timeout the handshake would wait
        except subprocess.TimeoutExpired:
            pytest.fail("unmount waited for a reconnect hanging in its TLS handshake:\n" +
                        stacks(m.proc.pid))
        assert rc == 0, m.stderr()
        m.check_stderr(ALLOWED)
    finally:
        if m.proc.poll() is None:
            m.kill()


def test_ctrl_c_during_a_handshake_that_never_completes(mailfs_bin, server, workdir, proxy):
    """A `getfattr` of headers that has to connect, to a server that
    accepts and never answers (timeout=300): Ctrl-C ends its wait in the
    TLS handshake at once (the FUSE interrupt fires the request's connect
    switch). (Not a first read: through the page cache it is the kernel's
    read-ahead, which no signal interrupts.)"""
    url = f"imaps://alice@localhost:{proxy.port}"
    # The one connect after the cut is the request's: no push watcher, and
    # one connection (a mount whose login took 50 ms, as under ASan, opens
    # the others in the background, and their logins may straddle the cut).
    m = mount_at(mailfs_bin, server, workdir, "silent-ctrlc", url=url, timeout=300,
                 idle="no", connections=1)
    try:
        inbox = os.path.join(m.mountpoint, "INBOX")
        names = sorted(os.listdir(inbox))
        proxy.set_mode("silent")  # the idle session is cut: the request reconnects
        reader = subprocess.Popen(["getfattr", "-n", "user.mail.subject",
                                   os.path.join(inbox, names[8])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  preexec_fn=ctrl_c_able)
        try:
            wait_for(lambda: proxy.conns, 30, "the read's connect to reach the proxy")
        except AssertionError:
            pytest.fail(f"no connect; getfattr: {reader.poll()}, "
                        f"{reader.stderr.read() if reader.poll() is not None else ''}; "
                        f"daemon:\n{m.stderr()[-3000:]}")
        assert reader.poll() is None, ("the request did not wait", reader.stderr.read())
        reader.send_signal(signal.SIGINT)
        reader.wait(60)  # a killed reader goes at once; its request in the daemon may not
        # The daemon drops the connect the request was making (far below the
        # 300 s timeout: the interrupt, not a timeout).
        try:
            wait_for(lambda: proxy.closed_by_client() >= 1, 60,
                     "the interrupted request to drop its connect")
        except AssertionError:
            pytest.fail("Ctrl-C did not end a connect hanging in its TLS handshake:\n" +
                        stacks(m.proc.pid))
        assert "state: up" in status(m)  # an interrupt says nothing of the server
        # Forwarding again cuts whatever still waits in "silent" mode: the
        # account may be down for a moment, and is up again by itself.
        proxy.set_mode("forward")
        want = server_body(server, "INBOX", names[8])
        wait_for(lambda: read_or_none(os.path.join(inbox, names[8])) == want, 60,
                 "the message to read again")
        m.unmount(allowed=ALLOWED + [r"warning: .*(interrupt|abort)"])
    finally:
        if m.proc.poll() is None:
            m.kill()
