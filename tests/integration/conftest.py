# SPDX-License-Identifier: GPL-2.0-or-later
"""pytest fixtures: a private dovecot with the corpus, and real mailfs mounts.

Run through scripts/test, or by hand:
    pytest-3 tests/integration --mailfs-build build
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import corpus
import mailserver

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))

# Lines of a sanitizer report in the daemon's stderr: they fail a test
# always, whatever lines the test allows and however the daemon exited.
SANITIZER_REPORT = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer|"
    r"SUMMARY: ThreadSanitizer)")
# Lines in the daemon's stderr that fail a test even when everything else passed.
BAD_STDERR = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|ThreadSanitizer|"
    r"warning:|critical|assertion|Segmentation fault|GLib-CRITICAL|GLib-WARNING)",
    re.IGNORECASE)


def pytest_addoption(parser):
    parser.addoption("--mailfs-build", default=os.environ.get("MAILFS_BUILD", "build"),
                     help="meson build directory holding src/mailfs")



def ctrl_c_able():
    """preexec_fn of a child a test will Ctrl-C: SIGINT at its default, as from
    a terminal. Where the tests run in the background (`scripts/test &`), the
    shell starts them with SIGINT ignored, and every child inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, timeout=30, what="condition"):
    """predicate()'s first true value, asked every 0.2 s; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def status_counts(mountpoint):
    """The numeric counters of a mount's user.mailfs.status attribute."""
    text = os.getxattr(mountpoint, "user.mailfs.status").decode()
    return {k: int(v) for k, v in re.findall(r"^(\w+): (\d+)$", text, re.M)}


def load_delay_proxy():
    """scripts/delay-proxy as a module (start(host, port, rtt_ms, cut_after))."""
    import importlib.machinery
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                        "delay-proxy")
    loader = importlib.machinery.SourceFileLoader("delay_proxy", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("delay_proxy", loader))
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def build_dir(request):
    d = request.config.getoption("--mailfs-build")
    if not os.path.isabs(d):
        d = os.path.join(SOURCE_ROOT, d)
    return d


@pytest.fixture(scope="session")
def sanitized(build_dir):
    """Whether the daemon under test is built with a sanitizer (meson's
    b_sanitize): the sanitizer passes may run fewer repetitions of a trial
    whose point is not memory or threads, where the plain pass runs them all."""
    import json
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            options = json.load(f)
    except OSError:
        return False
    return any(o["name"] == "b_sanitize" and o["value"] not in ("none", "", [])
               for o in options)


@pytest.fixture(scope="session")
def mailfs_bin(build_dir):
    path = os.path.join(build_dir, "src", "mailfs")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: run scripts/test, or meson setup + ninja first")
    return path


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="mailfs-test-")
    os.chmod(d, 0o755)
    yield d
    cleanup_mounts(d)
    shutil.rmtree(d, ignore_errors=True)


_servers = []


@pytest.fixture(scope="session")
def dovecot(workdir):
    """The session's dovecot, seeded with the corpus for alice (carol: INBOX. namespace)."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot"))
    server.start()
    _servers.append(server)
    try:
        with server.imaps("alice") as c:
            corpus.seed(c)
        with server.imaps("carol") as c:
            corpus.seed(c, corpus.build(include_pyemail=False)[:5],
                        folders=["INBOX.Work", "INBOX.Work.Reports"])
        yield server
    finally:
        server.stop()
        _servers.remove(server)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for server in _servers:
            rep.sections.append(("dovecot.log", server.log_tail()))


# -- mounts ---------------------------------------------------------------------

def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1].encode().decode("unicode_escape") == path:
                return fields
    return None


def cleanup_mounts(under):
    """Unmount every FUSE mount below a directory (lazily), whatever state it is in."""
    under = os.path.realpath(under)
    with open("/proc/mounts") as f:
        points = [l.split()[1] for l in f if l.split()[2].startswith("fuse")]
    for p in points:
        if p.startswith(under):
            subprocess.run(["fusermount3", "-uz", p], capture_output=True)


def sanitizer_env():
    env = dict(os.environ)
    supp = os.path.join(SOURCE_ROOT, "tests", "lsan.supp")
    # Full stacks in leak reports: GLib is built without frame pointers.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66:"
                   "fast_unwind_on_malloc=0")
    env.setdefault("LSAN_OPTIONS", f"suppressions={supp}:print_suppressions=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
    if "TSAN_OPTIONS" in env:
        # A ThreadSanitizer run (scripts/test's tsan pass): GLib 2.74's slice
        # allocator hands memory between threads through its own futex
        # locks, which TSan cannot see; plain malloc it can. Not for the
        # other passes, whose leak checks were settled with the slices.
        env.setdefault("G_SLICE", "always-malloc")
    return env


class Mount:
    """One mailfs daemon in the foreground on a mountpoint."""

    def __init__(self, binary, source, mountpoint, options, workdir, env=None,
                 config=None, args=()):
        self.binary = binary
        self.source = source
        self.mountpoint = mountpoint
        self.options = dict(options)
        self.workdir = workdir
        self.env = env or sanitizer_env()
        self.config = config
        self.args = list(args)
        self.proc = None
        self.stderr_path = os.path.join(workdir, f"mailfs-{os.path.basename(mountpoint)}.err")

    def command(self):
        opts = ",".join(k if v is True else f"{k}={v}" for k, v in self.options.items())
        cmd = [self.binary, "-f"] + self.args
        if self.config:
            cmd += ["-F", self.config]
        if opts:
            cmd += ["-o", opts]
        return cmd + [self.source, self.mountpoint]

    def start(self, timeout=30):
        os.makedirs(self.mountpoint, exist_ok=True)
        self.errfile = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.errfile, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mounted(self.mountpoint):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"mailfs exited with {self.proc.returncode} before mounting:\n{self.stderr()}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"mailfs did not mount within {timeout}s:\n{self.stderr()}")

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def unmount(self, timeout=30, allowed=()):
        """Unmount; the daemon must then exit 0 within the timeout.

        allowed: regexes of stderr lines a test expects (e.g. the warning
        about a server that went away)."""
        r = subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True, text=True)
        assert r.returncode == 0, f"fusermount3 -u failed: {r.stderr}"
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"mailfs did not exit within {timeout}s of unmount:\n{self.stderr()}")
        self.errfile.close()
        assert rc == 0, f"mailfs exited with {rc}:\n{self.stderr()}"
        self.check_stderr(allowed)

    def check_stderr(self, allowed=()):
        bad = [l for l in self.stderr().splitlines()
               if SANITIZER_REPORT.search(l) or
               (BAD_STDERR.search(l) and not any(re.search(a, l) for a in allowed))]
        assert not bad, "unexpected lines in mailfs's stderr:\n" + "\n".join(bad)

    def check_sanitizers(self):
        """For a daemon a test made exit and checked itself: no sanitizer report."""
        report = [l for l in self.stderr().splitlines() if SANITIZER_REPORT.search(l)]
        assert not report, "sanitizer report in mailfs's stderr:\n" + self.stderr()

    def kill(self):
        subprocess.run(["fusermount3", "-uz", self.mountpoint], capture_output=True)
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def node_tag(request):
    """A short file name for the running test, unique per test and parameter:
    its name's first 40 characters (a long name loses its parameter there)
    and a hash of its whole id."""
    short = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name[:40])
    return f"{short}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]}"


@pytest.fixture
def mount(mailfs_bin, dovecot, workdir, request):
    """Factory: mount(user="alice", scheme="imaps", **options) -> Mount, unmounted at teardown.

    Unmounting at teardown asserts a clean exit (status 0, no sanitizer report,
    no unexpected warning); on any failure the mount is removed lazily and the
    daemon killed, so nothing is left behind.
    """
    mounts = []
    counter = [0]

    def make(user="alice", scheme="imaps", options=None, source=None, start=True, **kw):
        counter[0] += 1
        mp = os.path.join(workdir, f"mnt-{node_tag(request)}-{counter[0]}")
        opts = {"ca_file": dovecot.ca,
                "password_file": password_file(workdir, dovecot, user),
                "cache_dir": os.path.join(workdir, f"cache-{user}-{node_tag(request)}")}
        opts.update(options or {})
        m = Mount(mailfs_bin, source or dovecot.url(user, scheme), mp, opts, workdir, **kw)
        mounts.append(m)
        if start:
            m.start()
        return m

    yield make
    errors = []
    for m in mounts:
        if m.proc is None or m.proc.poll() is not None:
            # Never started, or a test that made it exit checked that itself
            # (but not for a sanitizer report, which fails whatever the test).
            subprocess.run(["fusermount3", "-uz", m.mountpoint], capture_output=True)
            if m.proc is not None:
                try:
                    m.check_sanitizers()
                except AssertionError as e:
                    errors.append(str(e))
            continue
        try:
            m.unmount()
        except AssertionError as e:
            errors.append(str(e))
            m.kill()
    if errors:
        pytest.fail("\n".join(errors))


def password_file(workdir, server, user):
    path = os.path.join(workdir, f"{user}.password")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(server.users[user] + "\n")
    return path
