# SPDX-License-Identifier: GPL-2.0-or-later
"""The POP3 client core against the real dovecot, through tests/tools/pop3_probe:
log in over POP3S and STLS, UIDL+LIST equal to poplib's, RETR of every message
byte for byte (dot-unstuffing), TOP headers, pipelined TOP, DELE committed by
QUIT; and the refusals.

POP3 locks the maildrop per session: every poplib session here is closed
with QUIT (dovecot.pop3s() does it), the probe always QUITs, and nothing is
deleted from the shared alice maildrop (DELE runs on a private dovecot)."""

import base64
import os
import poplib
import subprocess

import pytest

import corpus
import mailserver
from conftest import password_file, sanitizer_env

DOTS_SUBJECT = b"Subject: Dots at line starts"

# poplib refuses lines over 2048 bytes; the corpus has 20000-byte lines.
poplib._MAXLINE = 1 << 20


@pytest.fixture(scope="session")
def probe(build_dir):
    path = os.path.join(build_dir, "tests", "tools", "pop3_probe")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built")
    return path


def run_probe(probe, server, workdir, *args, user="alice", host="127.0.0.1", port=None,
              tls="implicit", ca=None, timeout=120, password=None, extra=()):
    if port is None:
        port = server.ports["pop3s" if tls == "implicit" else "pop3"]
    if password is None:
        pwfile = password_file(workdir, server, user)
    else:
        pwfile = os.path.join(workdir, "pop3-wrong.password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(pwfile, 0o600)
    cmd = [probe, "--tls", tls, "--password-file", pwfile, "--timeout", "10", *extra]
    if ca is not False:
        cmd += ["--ca", ca or server.ca]
    cmd += [host, str(port), user, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=sanitizer_env())
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def poplib_listing(server, user):
    with server.pop3s(user) as p:
        uidl = {}
        for line in p.uidl()[1]:
            n, u = line.split()
            uidl[int(n)] = u.decode()
        sizes = {}
        for line in p.list()[1]:
            n, s = line.split()
            sizes[int(n)] = int(s)
    return {n: (uidl[n], sizes[n]) for n in uidl}


def poplib_retr(server, user, nums):
    """RETR through poplib: lines come back unstuffed and without CRLF."""
    out = {}
    with server.pop3s(user) as p:
        for n in nums:
            lines = p.retr(n)[1]
            out[n] = b"\r\n".join(lines) + b"\r\n" if lines else b""
    return out


def parse_list(stdout):
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("quit "):
            continue
        n, u, s = line.split()
        rows[int(n)] = (u, int(s))
    return rows


def assert_unlocked(server, user):
    """The probe's session is over: the maildrop is not held by anyone."""
    with server.pop3s(user) as p:
        assert p.stat()[0] >= 0


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_login(probe, dovecot, workdir, tls):
    r = run_probe(probe, dovecot, workdir, "login", tls=tls)
    assert r.returncode == 0, r.stderr
    caps = r.stdout.splitlines()[0].split()
    assert caps[0] == "caps"
    assert {"UIDL", "TOP", "CAPA", "PIPELINING", "RESP-CODES"} <= set(caps), caps
    # After TLS, STLS is no longer offered: the capabilities were read again.
    assert "STLS" not in caps
    assert "quit ok" in r.stdout


@pytest.mark.parametrize("auth", ["user", "plain"])
def test_login_mechanisms(probe, dovecot, workdir, auth):
    r = run_probe(probe, dovecot, workdir, "login", tls="starttls", extra=("--auth", auth))
    assert r.returncode == 0, r.stderr


def test_list_equals_poplib(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "list")
    assert r.returncode == 0, r.stderr
    got = parse_list(r.stdout)
    assert got == poplib_listing(dovecot, "alice")
    assert len(got) > 20
    assert_unlocked(dovecot, "alice")


def test_retr_every_message_byte_for_byte(probe, dovecot, workdir, tmp_path):
    listing = poplib_listing(dovecot, "alice")
    expected = poplib_retr(dovecot, "alice", sorted(listing))
    for n in sorted(listing):
        out = tmp_path / f"{n}.eml"
        r = run_probe(probe, dovecot, workdir, "retr", str(n), str(out), tls="starttls")
        assert r.returncode == 0, r.stderr
        got = out.read_bytes()
        assert got == expected[n], f"message {n} differs"
        assert f"size {len(got)}" in r.stdout
    assert max(len(b) for b in expected.values()) > 5 * 1024 * 1024


def test_dotted_message_is_exact(probe, dovecot, workdir, tmp_path):
    listing = poplib_listing(dovecot, "alice")
    bodies = poplib_retr(dovecot, "alice", sorted(listing))
    dotted = [n for n, b in bodies.items() if DOTS_SUBJECT in b]
    assert len(dotted) == 1
    source = [d for f, d, _, _ in corpus.build(include_pyemail=False)
              if f == "INBOX" and DOTS_SUBJECT in d]
    out = tmp_path / "dots.eml"
    r = run_probe(probe, dovecot, workdir, "retr", str(dotted[0]), str(out))
    assert r.returncode == 0, r.stderr
    got = out.read_bytes()
    # The bytes as they were appended: no dot lost, none added, CRLF kept.
    assert got == source[0]
    assert got.endswith(b"\r\n.\r\n..\r\n.hidden line\r\n. \r\nend.\r\n")


def test_top_headers(probe, dovecot, workdir):
    listing = poplib_listing(dovecot, "alice")
    n = min(listing)
    with dovecot.pop3s("alice") as p:
        lines = p.top(n, 0)[1]
    expected = b"\r\n".join(lines) + b"\r\n"
    r = subprocess.run([probe, "--ca", dovecot.ca, "--password-file",
                        password_file(workdir, dovecot, "alice"), "127.0.0.1",
                        str(dovecot.ports["pop3s"]), "alice", "top", str(n)],
                       capture_output=True, timeout=60, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(expected)
    assert expected.endswith(b"\r\n\r\n") and b"Date: " in expected


def test_pipelined_tops(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "tops")
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines() if not l.startswith("quit")]
    listing = poplib_listing(dovecot, "alice")
    assert [int(row[0]) for row in rows] == sorted(listing)
    assert all(row[1] != "error" and int(row[1]) > 0 for row in rows)
    assert "quit ok" in r.stdout


def test_refuses_unknown_ca(probe, dovecot, workdir):
    for tls in ("implicit", "starttls"):
        r = run_probe(probe, dovecot, workdir, "login", tls=tls, ca=dovecot.other_ca)
        assert r.returncode == 1
        assert "certificate" in r.stderr
        assert "tls_fingerprint=" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_wrong_password_shows_server_words(probe, dovecot, workdir):
    for auth in ("user", "plain"):
        r = run_probe(probe, dovecot, workdir, "login", password="not-the-password",
                      extra=("--auth", auth))
        assert r.returncode == 1
        assert "Authentication failed" in r.stderr, r.stderr
        assert "127.0.0.1" in r.stderr
        assert "not-the-password" not in r.stderr


def test_password_not_in_trace(probe, dovecot, workdir):
    secret = dovecot.users["alice"]
    plain = base64.b64encode(f"\0alice\0{secret}".encode()).decode()
    for auth in ("user", "plain"):
        r = run_probe(probe, dovecot, workdir, "login", tls="starttls",
                      extra=("--trace", "--auth", auth))
        assert r.returncode == 0, r.stderr
        assert "C: STLS" in r.stderr
        assert ("C: PASS ***" if auth == "user" else "C: AUTH PLAIN ***") in r.stderr
        assert secret not in r.stderr
        assert plain not in r.stderr


@pytest.fixture(scope="module")
def plain_dovecot(workdir):
    """A second dovecot without TLS: its POP3 listener does not offer STLS."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-pop3-plain"), tls=False)
    server.start()
    yield server
    server.stop()


def test_refuses_when_stls_not_offered(probe, plain_dovecot, workdir):
    r = run_probe(probe, plain_dovecot, workdir, "login", tls="starttls", ca=False,
                  port=plain_dovecot.ports["pop3"], extra=("--trace",))
    assert r.returncode == 1
    assert "STLS" in r.stderr and "tls=none" in r.stderr
    assert "C: USER" not in r.stderr and "C: PASS" not in r.stderr


def test_tls_none_works_when_chosen(probe, plain_dovecot, workdir):
    r = run_probe(probe, plain_dovecot, workdir, "list", tls="none", ca=False,
                  port=plain_dovecot.ports["pop3"])
    assert r.returncode == 0, r.stderr
    assert "warning: tls=none" in r.stderr and "unencrypted" in r.stderr


@pytest.fixture(scope="module")
def spool_dovecot(workdir):
    """A private dovecot whose bob has a few corpus messages, for DELE."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-pop3-spool"))
    server.start()
    msgs = [m for m in corpus.build(include_pyemail=False) if m[0] == "INBOX"][:6]
    msgs = [("INBOX", d, t, f) for _, d, t, f in msgs]
    with server.imaps("bob") as c:
        corpus.seed(c, msgs, folders=["INBOX"])
    yield server
    server.stop()


def test_dele_is_committed_by_quit(probe, spool_dovecot, workdir):
    before = poplib_listing(spool_dovecot, "bob")
    assert len(before) == 6
    nums = sorted(before)
    r = run_probe(probe, spool_dovecot, workdir, "dele", str(nums[0]), user="bob")
    assert r.returncode == 0, r.stderr
    assert f"dele {nums[0]} ok" in r.stdout and "quit ok" in r.stdout
    after = poplib_listing(spool_dovecot, "bob")
    assert sorted(u for u, _ in after.values()) == sorted(
        u for n, (u, _) in before.items() if n != nums[0])
    # Several at once (pipelined), one of them not there.
    nums = sorted(after)
    r = run_probe(probe, spool_dovecot, workdir, "dele", str(nums[0]), str(nums[1]), "999",
                  user="bob")
    assert r.returncode == 0, r.stderr
    assert f"dele {nums[0]} ok" in r.stdout and f"dele {nums[1]} ok" in r.stdout
    assert "dele 999 ok" not in r.stdout
    assert len(poplib_listing(spool_dovecot, "bob")) == 3
    assert_unlocked(spool_dovecot, "bob")
