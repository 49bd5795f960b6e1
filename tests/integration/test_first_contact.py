# SPDX-License-Identifier: GPL-2.0-or-later
"""The mistakes of a first mount, against the real dovecot: each is refused at
once with one line on stderr that says what to do, and a non-zero exit
(mailfs(1), DESCRIPTION and MOUNT POINT). A wrong scheme for the port, IMAP
and POP3 mixed up, a file option naming a missing file, a config file with a
syntax error, a non-empty or dead mountpoint."""

import os
import signal
import subprocess

import pytest

from conftest import Mount, mounted, password_file, sanitizer_env

# Hang guard only: every refusal here comes at once. A wrong TLS mode used to
# wait for the whole timeout, which the tests set far above this.
HANG_GUARD = 30
LONG_TIMEOUT = "120"


def refusal(r):
    """The one-line form of every startup error: one line, "mailfs: ...", exit != 0."""
    assert r.returncode != 0, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailfs: "), r.stderr
    assert r.stdout == ""
    return lines[0]


@pytest.fixture
def run(mailfs_bin, dovecot, workdir, tmp_path):
    """run(source, options=..., mountpoint=None, args=()) -> CompletedProcess of
    `mailfs -f` on an empty directory; nothing may stay mounted."""
    made = []

    def go(source, options=None, mountpoint=None, args=()):
        mp = mountpoint or str(tmp_path / f"mnt{len(made)}")
        try:
            os.makedirs(mp, exist_ok=True)
        except FileExistsError:
            # A dead mount there: the name exists, but makedirs' check that
            # it is a directory stats it, which fails (ENOTCONN) once the
            # kernel's attributes of it have expired.
            pass
        made.append(mp)
        opts = {"ca_file": dovecot.ca,
                "password_file": password_file(workdir, dovecot, "alice"),
                "cache_dir": str(tmp_path / "cache"),
                "timeout": LONG_TIMEOUT}
        opts.update(options or {})
        o = ",".join(f"{k}={v}" for k, v in opts.items() if v is not None)
        try:
            return subprocess.run([mailfs_bin, "-f", *args, "-o", o, source, mp],
                                  capture_output=True, text=True, timeout=HANG_GUARD,
                                  stdin=subprocess.DEVNULL, env=sanitizer_env())
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"hang guard: mailfs still waiting after {HANG_GUARD}s "
                                 f"(stderr: {e.stderr})")

    yield go
    for mp in made:
        if mounted(mp):
            subprocess.run(["fusermount3", "-uz", mp], capture_output=True)
            pytest.fail(f"{mp} was left mounted")


def url(dovecot, scheme, port_of):
    return f"{scheme}://alice@localhost:{dovecot.ports[port_of]}"


# -- the wrong scheme for the port ------------------------------------------------------

@pytest.mark.parametrize("scheme,port_of,hint", [
    ("imap", "imaps", "use imaps://"),
    ("pop3", "pop3s", "use pop3s://"),
])
def test_plain_scheme_on_a_tls_port_fails_at_once(run, dovecot, scheme, port_of, hint):
    """A TLS port says nothing until the client's handshake: the greeting wait is
    short, and the message says which scheme to try."""
    line = refusal(run(url(dovecot, scheme, port_of)))
    assert "sent no greeting" in line and hint in line, line


@pytest.mark.parametrize("scheme,port_of", [("imaps", "imap"), ("pop3s", "pop3")])
def test_tls_scheme_on_a_plain_port_fails_at_once(run, dovecot, scheme, port_of):
    line = refusal(run(url(dovecot, scheme, port_of)))
    assert "TLS handshake" in line and "try the other tls mode" in line, line


@pytest.mark.parametrize("scheme,port_of,hint", [
    ("imaps", "pop3s", "use pop3s://"),
    ("imap", "pop3", "use pop3://"),
])
def test_imap_url_at_a_pop3_server_says_so(run, dovecot, scheme, port_of, hint):
    line = refusal(run(url(dovecot, scheme, port_of)))
    assert "is a POP3 server, not IMAP" in line and hint in line, line


@pytest.mark.parametrize("scheme,port_of,hint", [
    ("pop3s", "imaps", "use imaps://"),
    ("pop3", "imap", "use imap://"),
])
def test_pop3_url_at_an_imap_server_says_so(run, dovecot, scheme, port_of, hint):
    line = refusal(run(url(dovecot, scheme, port_of)))
    assert "is an IMAP server, not POP3" in line and hint in line, line


# -- options that name files ------------------------------------------------------------

def test_missing_ca_file_names_the_file_and_the_os_error(run, dovecot, tmp_path):
    missing = str(tmp_path / "no-such-ca.pem")
    line = refusal(run(dovecot.url("alice"), {"ca_file": missing}))
    assert f"ca_file {missing}: No such file or directory" in line, line
    assert "OpenSSL" not in line


def test_ca_file_that_is_a_directory(run, dovecot, tmp_path):
    line = refusal(run(dovecot.url("alice"), {"ca_file": str(tmp_path)}))
    assert f"ca_file {tmp_path}: Is a directory" in line, line


def test_ca_file_that_is_not_pem(run, dovecot, tmp_path):
    bogus = tmp_path / "ca.txt"
    bogus.write_text("not a certificate\n")
    line = refusal(run(dovecot.url("alice"), {"ca_file": str(bogus)}))
    assert f"ca_file {bogus}: " in line and "PEM" in line, line


def test_missing_password_file_names_the_file(run, dovecot, tmp_path):
    missing = str(tmp_path / "no-such-password")
    line = refusal(run(dovecot.url("alice"), {"password_file": missing}))
    assert missing in line and "No such file or directory" in line, line


def test_unusable_cache_dir_names_the_option(run, dovecot, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = refusal(run(dovecot.url("alice"), {"cache_dir": str(blocker / "cache")}))
    assert f"cache_dir {blocker / 'cache'}: Not a directory" in line, line


def test_unusable_pop3_archive_names_the_option(run, dovecot, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = refusal(run(dovecot.url("alice", "pop3s"),
                       {"pop3_archive": str(blocker / "archive")}))
    assert line.startswith("mailfs: pop3_archive: ") and str(blocker) in line, line
    assert "Not a directory" in line, line


# -- the config file --------------------------------------------------------------------

def test_config_syntax_error_names_file_and_line(run, dovecot, tmp_path):
    conf = tmp_path / "mailfs.conf"
    conf.write_text("[defaults]\nconnections = 2\n\nthis line is no key\n"
                    f"[account work]\nurl = {dovecot.url('alice')}\n")
    line = refusal(run("work", args=("-F", str(conf))))
    assert line.startswith(f"mailfs: {conf}:4: "), line
    assert "this line is no key" in line


def test_config_bad_value_names_file_line_and_key(run, dovecot, tmp_path):
    conf = tmp_path / "mailfs.conf"
    conf.write_text(f"# mine\n[account work]\nurl = {dovecot.url('alice')}\n"
                    "connections = lots\n")
    line = refusal(run("work", args=("-F", str(conf))))
    assert line.startswith(f"mailfs: {conf}:4: [account work] connections: "), line


def test_config_unknown_key_names_file_line_and_key(run, dovecot, tmp_path):
    conf = tmp_path / "mailfs.conf"
    conf.write_text(f"[account work]\nurl = {dovecot.url('alice')}\n\ncolour = blue\n")
    line = refusal(run("work", args=("-F", str(conf))))
    assert line.startswith(f"mailfs: {conf}:4: [account work] unknown key 'colour'"), line


# -- the mountpoint ---------------------------------------------------------------------

def test_non_empty_mountpoint_is_refused_with_a_hint(run, dovecot, tmp_path):
    mp = tmp_path / "full"
    mp.mkdir()
    (mp / "notes.txt").write_text("mine\n")
    line = refusal(run(dovecot.url("alice"), mountpoint=str(mp)))
    assert f"mountpoint {mp} is not empty" in line and "-o nonempty" in line, line
    assert not mounted(str(mp))


def test_nonempty_option_mounts_over_files(mount, tmp_path):
    m = mount(options={"nonempty": True}, start=False)
    os.makedirs(m.mountpoint)
    with open(os.path.join(m.mountpoint, ".hidden-while-mounted"), "w") as f:
        f.write("mine\n")
    m.start()
    assert "INBOX" in os.listdir(m.mountpoint)
    m.unmount()
    assert os.listdir(m.mountpoint) == [".hidden-while-mounted"]


def test_dead_mount_not_ours_is_refused_with_the_unmount_command(mount, run, dovecot):
    """A dead FUSE mount of another file system (here: another subtype) is not
    touched; the refusal says how to remove it."""
    m = mount(options={"subtype": "other"})
    os.killpg(m.proc.pid, signal.SIGKILL)
    m.proc.wait(HANG_GUARD)
    m.errfile.close()
    try:
        with pytest.raises(OSError):
            os.listdir(m.mountpoint)
        line = refusal(run(dovecot.url("alice"), mountpoint=m.mountpoint))
        assert "is a dead mount" in line, line
        assert line.endswith(f"fusermount3 -uz {os.path.realpath(os.path.dirname(m.mountpoint))}/"
                             f"{os.path.basename(m.mountpoint)}"), line
        assert mounted(m.mountpoint), "a dead mount that is not ours was removed"
    finally:
        subprocess.run(["fusermount3", "-uz", m.mountpoint], capture_output=True)

