# SPDX-License-Identifier: GPL-2.0-or-later
"""A private dovecot on 127.0.0.1 for tests, the demo and the benchmark.

Everything lives under one base directory: config, a CA and server
certificate made for the run, Maildirs, logs and sockets. The server listens
on free ports for IMAP (STARTTLS offered), IMAPS, POP3 (STLS offered) and
POP3S. Only the standard library is used.
"""

import imaplib
import os
import poplib
import pwd
import grp
import shutil
import signal
import socket
import ssl
import subprocess
import time

USERS = {
    "alice": "alice-Secret-1",
    "bob": "bob-Secret-2",
    # carol sees a Courier-style namespace: INBOX. prefix, '.' as separator.
    "carol": "carol-Secret-3",
    # dave's mailbox is changed by the write tests.
    "dave": "dave-Secret-4",
    # erin's INBOX is changed behind the mount's back by the push tests.
    "erin": "erin-Secret-5",
    # lia's mailbox gets the folders and copies of the link tests (test_links.py).
    "lia": "lia-Secret-6",
}


class DovecotError(RuntimeError):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(names):
    """{name: port}, all different: every socket is held until all are
    bound (one free_port() after another may return a port twice, and a
    server then refuses its own configuration: "duplicate listener")."""
    socks = []
    try:
        for _ in names:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return {n: s.getsockname()[1] for n, s in zip(names, socks)}
    finally:
        for s in socks:
            s.close()


def dovecot_version():
    try:
        out = subprocess.run(["dovecot", "--version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise DovecotError(f"dovecot is not installed ({e}); run scripts/bootstrap")
    return out


def make_ca(base):
    """A CA and a server certificate for localhost/127.0.0.1, made with the openssl CLI."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca_key, ca_crt = os.path.join(base, "ca.key"), os.path.join(base, "ca.crt")
    key, csr, crt = (os.path.join(base, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(base, "server.ext")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
        "-days", "2", "-subj", "/CN=mailfs test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    # A second, unrelated CA: clients that trust only it must refuse the server.
    other_key, other_crt = os.path.join(base, "other-ca.key"), os.path.join(base, "other-ca.crt")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", other_key, "-out", other_crt,
        "-days", "2", "-subj", "/CN=some other CA")
    os.chmod(key, 0o600)
    return ca_crt, crt, key, other_crt


CONFIG = """\
# Written by tests/integration/mailserver.py for one run (dovecot 2.3 syntax).
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
instance_name = mailfs-test-{tag}
protocols = imap pop3
listen = 127.0.0.1, 127.0.0.2
shutdown_clients = yes

default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_uid = dovecot
mail_gid = dovecot

{ssl_block}
auth_mechanisms = plain login

mail_location = maildir:{base}/mail/%u:LAYOUT=fs
mail_fsync = never
maildir_very_dirty_syncs = no

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
  default_fields = uid=dovecot gid=dovecot home={base}/home/%u
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1, 127.0.0.2
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1, 127.0.0.2
    port = {imaps}
    {listener_ssl}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1, 127.0.0.2
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1, 127.0.0.2
    port = {pop3s}
    {listener_ssl}
  }}
}}
service anvil {{
  chroot =
}}
service imap {{
  process_limit = 256
}}
protocol imap {{
  mail_max_userip_connections = 64
{imap_extra}
}}
protocol pop3 {{
  pop3_uidl_format = %08Xu%08Xv
  mail_max_userip_connections = 16
{pop3_extra}
}}
{extra}
"""


class Dovecot:
    """One private dovecot instance. Use start(), then stop() (or a with block)."""

    def __init__(self, base, imap_extra="", pop3_extra="", extra="", users=None, tls=True):
        """tls=False: a server without TLS at all (STARTTLS/STLS not offered)."""
        self.base = os.path.abspath(base)
        self.tls = tls
        self.users = dict(users or USERS)
        self.imap_extra = imap_extra
        self.pop3_extra = pop3_extra
        self.extra = extra
        self.proc = None
        self.ports = {}
        self.host = "127.0.0.1"

    # -- life cycle ---------------------------------------------------------
    def start(self, timeout=30):
        version = dovecot_version()
        if not version.startswith("2.3."):
            raise DovecotError(
                f"dovecot {version} found; the test configuration is written for dovecot 2.3 "
                "(Debian 12). dovecot 2.4 changed the config syntax.")
        os.makedirs(self.base, exist_ok=True)
        # dovecot's unprivileged processes must traverse down to their files.
        os.chmod(self.base, 0o755)
        for d in ("run", "state", "mail", "home"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        uid = pwd.getpwnam("dovecot").pw_uid
        gid = grp.getgrnam("dovecot").gr_gid
        for d in ("mail", "home"):
            os.chown(os.path.join(self.base, d), uid, gid)
        if not os.path.exists(os.path.join(self.base, "ca.crt")):
            self.ca, self.cert, self.key, self.other_ca = make_ca(self.base)
        else:
            self.ca = os.path.join(self.base, "ca.crt")
            self.cert = os.path.join(self.base, "server.crt")
            self.key = os.path.join(self.base, "server.key")
            self.other_ca = os.path.join(self.base, "other-ca.crt")
        self.write_passwd()
        if not self.ports:
            self.ports = free_ports(("imap", "imaps", "pop3", "pop3s"))
        self.write_config()
        self.log_offset = self.log_size()
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.config],
                                     stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(self.base, "dovecot.out"), "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)
        return self

    def write_passwd(self):
        lines = []
        for user, pw in self.users.items():
            fields = ""
            if user == "carol":
                fields = ("userdb_namespace/inbox/prefix=INBOX. "
                          "userdb_namespace/inbox/separator=.")
            lines.append(f"{user}:{{PLAIN}}{pw}::::::{fields}\n")
        path = os.path.join(self.base, "passwd")
        with open(path, "w") as f:
            f.writelines(lines)
        os.chmod(path, 0o644)

    def write_config(self):
        dh = "/usr/share/dovecot/dh.pem"
        self.config = os.path.join(self.base, "dovecot.conf")
        if self.tls:
            ssl_block = (f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.key}\n"
                         + (f"ssl_dh = <{dh}\n" if os.path.exists(dh) else "")
                         + "ssl_min_protocol = TLSv1.2\ndisable_plaintext_auth = yes\n")
        else:
            ssl_block = "ssl = no\ndisable_plaintext_auth = no\n"
        with open(self.config, "w") as f:
            f.write(CONFIG.format(base=self.base, tag=os.getpid(), ssl_block=ssl_block,
                                  listener_ssl="ssl = yes" if self.tls else "",
                                  imap_extra=self.imap_extra, pop3_extra=self.pop3_extra,
                                  extra=self.extra, **self.ports))

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DovecotError(f"dovecot exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.tls:
                    with self.imaps("alice"):
                        pass
                    with self.pop3s("alice"):
                        pass
                else:
                    with imaplib.IMAP4(self.host, self.ports["imap"], timeout=30) as c:
                        c.login("alice", self.users["alice"])
                return
            except (OSError, imaplib.IMAP4.error, poplib.error_proto) as e:
                last = e
                time.sleep(0.1)
        self.stop()
        raise DovecotError(f"dovecot did not answer within {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def freeze(self):
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def restart(self, **changes):
        """Stop, change settings (imap_extra=...), start again on the same ports."""
        self.stop()
        for k, v in changes.items():
            setattr(self, k, v)
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- logs ---------------------------------------------------------------
    def log_path(self):
        return os.path.join(self.base, "dovecot.log")

    def log_size(self):
        try:
            return os.path.getsize(self.log_path())
        except OSError:
            return 0

    def log_tail(self, nbytes=3000):
        out = ""
        for name in ("dovecot.log", "dovecot.out"):
            try:
                with open(os.path.join(self.base, name), "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - nbytes))
                    out += f"--- {name} ---\n" + f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return out

    # -- clients ------------------------------------------------------------
    def ssl_context(self, ca=None):
        ctx = ssl.create_default_context(cafile=ca or self.ca)
        return ctx

    def imaps(self, user):
        c = imaplib.IMAP4_SSL(self.host, self.ports["imaps"], ssl_context=self.ssl_context(),
                              timeout=30)
        c.login(user, self.users[user])
        return c

    def imap_starttls(self, user):
        c = imaplib.IMAP4(self.host, self.ports["imap"], timeout=30)
        c.starttls(ssl_context=self.ssl_context())
        c.login(user, self.users[user])
        return c

    def pop3s(self, user):
        c = poplib.POP3_SSL(self.host, self.ports["pop3s"], context=self.ssl_context(),
                            timeout=30)
        c.user(user)
        c.pass_(self.users[user])
        return _ClosingPop3(c)

    def pop3_stls(self, user):
        c = poplib.POP3(self.host, self.ports["pop3"], timeout=30)
        c.stls(context=self.ssl_context())
        c.user(user)
        c.pass_(self.users[user])
        return _ClosingPop3(c)

    def url(self, user, scheme="imaps"):
        return f"{scheme}://{user}@localhost:{self.ports[scheme]}"

    def reset_user(self, user):
        """Remove every mailbox of a user (the server must not hold it open)."""
        path = os.path.join(self.base, "mail", user)
        shutil.rmtree(path, ignore_errors=True)


class _ClosingPop3:
    """poplib has no context manager; QUIT on exit so the maildrop lock is released."""

    def __init__(self, c):
        self.c = c

    def __getattr__(self, name):
        return getattr(self.c, name)

    def __enter__(self):
        return self.c

    def __exit__(self, *exc):
        try:
            self.c.quit()
        except (OSError, poplib.error_proto):
            self.c.close()
