# SPDX-License-Identifier: GPL-2.0-or-later
"""Private Cyrus IMAP 3.6 and Courier-IMAP 5 servers on 127.0.0.1, for the
server matrix, without installing them.

Their Debian packages conflict with dovecot-imapd, which the rest of the
suite needs, so they are never installed: `apt-get download` fetches the
.deb files (and the libraries they need that Debian 12 does not have
installed) into a cache reused across runs, `dpkg-deb -x` unpacks them into
a private root, and each server runs in a private mount namespace
(`unshare -m`) where overlay mounts lay that root over /usr and /etc, and a
directory of the server's own over /run. The binaries then find their
files at the paths compiled into them, the users they drop to (cyrus,
courier) exist in the namespace's /etc/passwd only, and nothing outside the
namespace changes. Everything a server writes lives under its base
directory. Both serve IMAP (STARTTLS offered), IMAPS, POP3 (STLS offered)
and POP3S, with a certificate from make_ca, on free ports.

The cache: $MAILFS_TEST_SERVERS_CACHE, else ~/.cache/mailfs-test-servers.
Delete it to fetch again.
"""

import fcntl
import grp
import imaplib
import os
import poplib
import pwd
import shutil
import signal
import subprocess
import time

import mailserver

# What each server needs beyond what scripts/bootstrap installs: the
# server's packages and the shared libraries Debian 12 lacks (found with
# ldd on the unpacked binaries).
PACKAGES = {
    "cyrus": ["cyrus-common", "cyrus-imapd", "cyrus-pop3d", "sasl2-bin",
              "libical3", "libxapian30"],
    "courier": ["courier-base", "courier-imap", "courier-pop", "courier-authlib",
                "courier-authdaemon", "courier-authlib-userdb", "libcourier-unicode4",
                "libltdl7", "libgamin0", "gamin"],
}


class ServerError(RuntimeError):
    pass


def cache_dir():
    return os.environ.get("MAILFS_TEST_SERVERS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "mailfs-test-servers")


def private_root(kind):
    """The unpacked root for one server kind, fetched and unpacked once (under a
    lock, so two runs at once share it)."""
    base = os.path.join(cache_dir(), kind)
    debs, root = os.path.join(base, "debs"), os.path.join(base, "root")
    done = os.path.join(base, "unpacked")
    os.makedirs(debs, exist_ok=True)
    with open(os.path.join(base, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return root
        have = {f.split("_", 1)[0] for f in os.listdir(debs) if f.endswith(".deb")}
        want = [p for p in PACKAGES[kind] if p not in have]
        if want:
            # A plain download: nothing is installed. _apt cannot write into a
            # root-owned cache; apt then downloads as root (its warning is noise).
            r = subprocess.run(["apt-get", "download", "-q", *want], cwd=debs,
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise ServerError(f"apt-get download {' '.join(want)} failed:\n{r.stderr}")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        for f in sorted(os.listdir(debs)):
            if f.endswith(".deb"):
                subprocess.run(["dpkg-deb", "-x", os.path.join(debs, f), root], check=True)
        with open(done, "w") as f:
            f.write("\n".join(sorted(os.listdir(debs))) + "\n")
        return root


def free_id(taken):
    """A uid/gid number that neither the real passwd nor group uses."""
    n = 64999
    while n in taken:
        n -= 1
    return n


class UnpackedServer(mailserver.Dovecot):
    """Common to both: the private root, the namespace, the life cycle.

    The clients (imaps, imap_starttls, pop3s, pop3_stls, url) are dovecot's."""

    kind = None
    # The daemon user of the package, added to the namespace's /etc/passwd.
    daemon_user = None

    def __init__(self, base, users):
        super().__init__(base, users=users)
        self.root = None
        self.proc = None

    # -- the namespace -------------------------------------------------------
    def etc_layer(self):
        """A directory laid over the unpacked /etc and the real one: passwd and
        group with the daemon's user, and the server's configuration."""
        layer = os.path.join(self.base, "etc")
        os.makedirs(layer, exist_ok=True)
        uids = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
        self.uid = free_id(uids)
        self.gid = self.uid
        with open("/etc/passwd") as f:
            passwd = f.read()
        with open("/etc/group") as f:
            group = f.read()
        with open(os.path.join(layer, "passwd"), "w") as f:
            f.write(passwd + f"{self.daemon_user}:x:{self.uid}:{self.gid}::{self.base}:"
                    "/usr/sbin/nologin\n")
        with open(os.path.join(layer, "group"), "w") as f:
            f.write(group + f"{self.daemon_user}:x:{self.gid}:\n")
        return layer

    def namespace_prelude(self):
        etc = os.path.join(self.base, "etc")
        return (
            # The new namespace starts with a copy of every mount, FUSE
            # mounts of mailfs included; a copy held here would keep such a
            # mount's session alive after its unmount outside (the daemon
            # would never see it end). Detach them all here first.
            "awk '$3 ~ /^fuse/ {print $2}' /proc/self/mounts | while read -r m; do\n"
            "    umount -l \"$(printf '%b' \"$m\")\" 2>/dev/null || true\n"
            "done\n"
            "set -e\n"
            f"mount -t overlay overlay -o lowerdir={self.root}/usr:/usr /usr\n"
            f"mount -t overlay overlay -o lowerdir={etc}:{self.root}/etc:/etc /etc\n"
            f"mount --bind {self.base}/run /run\n")

    def in_namespace(self, script, **kw):
        """Run a shell script in a fresh private mount namespace."""
        return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               self.namespace_prelude() + script], **kw)

    def start(self, timeout=60):
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755)
        self.root = private_root(self.kind)
        os.makedirs(os.path.join(self.base, "run"), exist_ok=True)
        if not os.path.exists(os.path.join(self.base, "ca.crt")):
            self.ca, self.cert, self.key, self.other_ca = mailserver.make_ca(self.base)
        if not self.ports:
            self.ports = mailserver.free_ports(("imap", "imaps", "pop3", "pop3s"))
        self.etc_layer()
        self.configure()
        script = self.namespace_prelude() + self.daemons() + "wait\n"
        # A private PID namespace too: couriertcpd starts sessions of its own,
        # and when the namespace's first process dies the kernel kills every
        # process in it, so none can outlive stop() or the test run.
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "-p", "--fork", "--kill-child",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.base, "server.out"), "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)
        self.create_accounts()
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode}:\n"
                                  f"{self.log_tail()}")
            try:
                # A greeting on every port (on the TLS ones after the handshake).
                ctx = self.ssl_context()
                imaplib.IMAP4(self.host, self.ports["imap"], timeout=10).shutdown()
                imaplib.IMAP4_SSL(self.host, self.ports["imaps"], ssl_context=ctx,
                                  timeout=10).shutdown()
                poplib.POP3(self.host, self.ports["pop3"], timeout=10).close()
                poplib.POP3_SSL(self.host, self.ports["pop3s"], context=ctx, timeout=10).close()
                return
            except (OSError, imaplib.IMAP4.error, poplib.error_proto) as e:
                last = e
                time.sleep(0.2)
        self.stop()
        raise ServerError(f"{self.kind} did not answer within {timeout}s ({last}):\n"
                          f"{self.log_tail()}")

    def stop(self):
        if self.proc is None:
            return
        # SIGKILL to unshare: --kill-child kills the namespace's first
        # process, and with it the kernel kills all the others.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.proc = None

    def log_tail(self, nbytes=3000):
        out = ""
        for name in sorted(os.listdir(self.base)):
            if name.endswith((".out", ".log")):
                with open(os.path.join(self.base, name), "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - nbytes))
                    out += f"--- {name} ---\n" + f.read().decode("utf-8", "replace")
        return out

    def reset_user(self, user):
        raise NotImplementedError


# -- Cyrus ------------------------------------------------------------------

IMAPD_CONF = """\
configdirectory: {base}/lib
partition-default: {base}/spool
sievedir: {base}/sieve
temp_path: {base}/tmp
admins: {admin}
altnamespace: {altnamespace}
unixhierarchysep: no
virtdomains: off
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {base}/sasldb2
sasl_mech_list: PLAIN LOGIN
tls_server_cert: {base}/tls/server.crt
tls_server_key: {base}/tls/server.key
tls_versions: tls1_2 tls1_3
idlesocket: /run/cyrus/socket/idle
notifysocket: /run/cyrus/socket/notify
lmtpsocket: /run/cyrus/socket/lmtp
autocreate_quota: -1
syslog_prefix: mailfs-test-cyrus
imapidlepoll: {idlepoll}
"""

CYRUS_CONF = """\
START {{
  recover cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  imap  cmd="/usr/lib/cyrus/bin/imapd -C {conf}" listen="127.0.0.1:{imap}" prefork=0
  imaps cmd="/usr/lib/cyrus/bin/imapd -s -C {conf}" listen="127.0.0.1:{imaps}" prefork=0
  pop3  cmd="/usr/lib/cyrus/bin/pop3d -C {conf}" listen="127.0.0.1:{pop3}" prefork=0
  pop3s cmd="/usr/lib/cyrus/bin/pop3d -s -C {conf}" listen="127.0.0.1:{pop3s}" prefork=0
}}
EVENTS {{
  checkpoint cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C {conf} -c" period=30
}}
DAEMON {{
  idled cmd="/usr/lib/cyrus/bin/idled -C {conf}"
}}
"""


class Cyrus(UnpackedServer):
    """Cyrus IMAP 3.6 (cyrmaster). altnamespace=False: the default namespace,
    folders under INBOX. with '.'; True: folders beside INBOX."""

    kind = "cyrus"
    daemon_user = "cyrus"
    ADMIN = ("cyrusadm", "cyrusadm-Secret-0")

    def __init__(self, base, users, altnamespace=False):
        super().__init__(base, users)
        self.altnamespace = altnamespace

    def configure(self):
        b = self.base
        for d in ("lib", "spool", "sieve", "tmp", "tls", "run/cyrus/socket"):
            os.makedirs(os.path.join(b, d), exist_ok=True)
            os.chown(os.path.join(b, d), self.uid, self.gid)
        os.chown(os.path.join(b, "run", "cyrus"), self.uid, self.gid)
        for name in ("server.crt", "server.key"):
            dst = os.path.join(b, "tls", name)
            shutil.copy(os.path.join(b, name), dst)
            os.chown(dst, self.uid, self.gid)
        self.conf = os.path.join(b, "imapd.conf")
        with open(self.conf, "w") as f:
            # idled runs, but imapd in IDLE learns of a change only at its
            # poll here: 5 s rather than 60 keeps the push tests short.
            f.write(IMAPD_CONF.format(base=b, admin=self.ADMIN[0], idlepoll=5,
                                      altnamespace="yes" if self.altnamespace else "no"))
        self.master_conf = os.path.join(b, "cyrus.conf")
        with open(self.master_conf, "w") as f:
            f.write(CYRUS_CONF.format(conf=self.conf, **self.ports))
        # The users, in a sasldb of the run's own.
        accounts = dict(self.users, **{self.ADMIN[0]: self.ADMIN[1]})
        script = "".join(
            f"printf '%s' '{pw}' | saslpasswd2 -p -c -f {b}/sasldb2 {u}\n"
            for u, pw in accounts.items())
        r = self.in_namespace(script, capture_output=True, text=True)
        if r.returncode != 0:
            raise ServerError(f"saslpasswd2 failed: {r.stdout}{r.stderr}")
        os.chown(os.path.join(b, "sasldb2"), self.uid, self.gid)

    def daemons(self):
        return (f"/usr/sbin/cyrmaster -C {self.conf} -M {self.master_conf} "
                f"-p {self.base}/run/cyrmaster.pid >>{self.base}/cyrmaster.log 2>&1 &\n")

    def create_accounts(self):
        """Cyrus has no mailbox for a user until an admin makes one."""
        c = imaplib.IMAP4_SSL(self.host, self.ports["imaps"], ssl_context=self.ssl_context(),
                              timeout=30)
        try:
            c.login(*self.ADMIN)
            for u in self.users:
                typ, data = c.create(f"user.{u}")
                if typ != "OK" and b"exists" not in data[0]:
                    raise ServerError(f"CREATE user.{u}: {data}")
        finally:
            c.logout()


# -- Courier ----------------------------------------------------------------

COURIER_IMAPD = """\
ADDRESS=127.0.0.1
MAXDAEMONS=40
MAXPERIP=40
TCPDOPTS="-nodnslookup -noidentlookup"
IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
IMAP_KEYWORDS=1
IMAP_ACL=1
IMAP_IDLE_TIMEOUT={idle_timeout}
IMAP_MAILBOX_SANITY_CHECK=0
IMAP_CAPABILITY_TLS="$IMAP_CAPABILITY AUTH=PLAIN"
IMAP_DISABLETHREADSORT=0
IMAP_CHECK_ALL_FOLDERS=0
IMAP_OBSOLETE_CLIENT=0
IMAP_UMASK=022
IMAP_USELOCKS=1
IMAP_ENHANCEDIDLE=0
IMAP_TRASHFOLDERNAME=Trash
IMAP_EMPTYTRASH=
IMAP_MOVE_EXPUNGE_TO_TRASH=0
HEADERFROM=X-IMAP-Sender
MAILDIRPATH=Maildir
IMAP_STARTTLS=YES
IMAP_TLS_REQUIRED=0
COURIERTLS=/usr/bin/couriertls
TLS_CERTFILE={base}/tls/server.pem
TLS_DHPARAMS={base}/tls/dh.pem
TLS_VERIFYPEER=NONE
TLS_CACHEFILE={base}/tls/cache
TLS_CACHESIZE=524288
POP3AUTH="PLAIN LOGIN"
POP3AUTH_TLS="PLAIN LOGIN"
POP3_STARTTLS=YES
POP3_TLS_REQUIRED=0
"""

COURIER_AUTHDAEMONRC = """\
authmodulelist="authuserdb"
daemons=3
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
"""


class Courier(UnpackedServer):
    """Courier-IMAP 5 (couriertcpd, imaplogin/imapd, couriertls, authdaemond
    with authuserdb) as Debian configures it: IMAP_ENHANCEDIDLE=0."""

    kind = "courier"
    daemon_user = "courier"

    def configure(self):
        b = self.base
        layer = os.path.join(b, "etc", "courier")
        os.makedirs(layer, exist_ok=True)
        for d in ("tls", "home", "run/courier/authdaemon"):
            os.makedirs(os.path.join(b, d), exist_ok=True)
        for d in ("tls", "home", "run/courier", "run/courier/authdaemon"):
            os.chown(os.path.join(b, d), self.uid, self.gid)
        pem = os.path.join(b, "tls", "server.pem")
        with open(pem, "wb") as out:
            for name in ("server.key", "server.crt"):
                with open(os.path.join(b, name), "rb") as f:
                    out.write(f.read())
        dh = os.path.join(b, "tls", "dh.pem")
        if os.path.exists("/usr/share/dovecot/dh.pem"):
            shutil.copy("/usr/share/dovecot/dh.pem", dh)
        else:
            subprocess.run(["openssl", "dhparam", "-dsaparam", "-out", dh, "2048"],
                           check=True, capture_output=True)
        open(os.path.join(b, "tls", "cache"), "w").close()
        for name in ("server.pem", "dh.pem", "cache"):
            os.chown(os.path.join(b, "tls", name), self.uid, self.gid)
            os.chmod(os.path.join(b, "tls", name), 0o600)
        self.imapd_conf = os.path.join(layer, "imapd")
        with open(self.imapd_conf, "w") as f:
            # Debian's IMAP_IDLE_TIMEOUT is 60: without IMAP_ENHANCEDIDLE an idle
            # imapd looks for changes that often. 10 keeps the push tests short.
            f.write(COURIER_IMAPD.format(base=b, idle_timeout=10))
        with open(os.path.join(layer, "authdaemonrc"), "w") as f:
            f.write(COURIER_AUTHDAEMONRC)
        # The users: a userdb of the run's own, mail owned by the courier user.
        lines = []
        for u, pw in self.users.items():
            home = os.path.join(b, "home", u)
            for d in ("", "Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"):
                os.makedirs(os.path.join(home, d), exist_ok=True)
                os.chown(os.path.join(home, d), self.uid, self.gid)
            crypt = subprocess.run(["openssl", "passwd", "-6", pw], check=True,
                                   capture_output=True, text=True).stdout.strip()
            lines.append(f"{u}\tuid={self.uid}|gid={self.gid}|home={home}|"
                         f"mail={home}/Maildir|systempw={crypt}\n")
        userdb = os.path.join(layer, "userdb")
        with open(userdb, "w") as f:
            f.writelines(lines)
        os.chmod(userdb, 0o600)
        # The layer's real path: /etc in the namespace is a read-only overlay.
        r = self.in_namespace(f"makeuserdb -f {userdb}\n", capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(userdb + ".dat"):
            raise ServerError(f"makeuserdb failed: {r.stdout}{r.stderr}")

    def daemons(self):
        b, p = self.base, self.ports
        env = f"env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin sh -c 'set -a; . {self.imapd_conf}; "
        lib = "/usr/lib/courier/courier"
        tcpd = ("exec couriertcpd -address=$ADDRESS -maxprocs=$MAXDAEMONS -maxperip=$MAXPERIP "
                "$TCPDOPTS")
        return (
            f"env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin sh -c 'set -a; . /etc/courier/authdaemonrc;"
            f" exec /usr/lib/courier/courier-authlib/authdaemond' >>{b}/authdaemond.log 2>&1 &\n"
            f"{env}{tcpd} {p['imap']} {lib}/imaplogin /usr/bin/imapd Maildir'"
            f" >>{b}/imapd.log 2>&1 &\n"
            f"{env}IMAP_TLS=1; {tcpd} {p['imaps']} $COURIERTLS -server -tcpd {lib}/imaplogin"
            f" /usr/bin/imapd Maildir' >>{b}/imapd-ssl.log 2>&1 &\n"
            f"{env}{tcpd} {p['pop3']} {lib}/courierpop3login {lib}/courierpop3d Maildir'"
            f" >>{b}/pop3d.log 2>&1 &\n"
            f"{env}POP3_TLS=1; POP3_STARTTLS=NO; {tcpd} {p['pop3s']} $COURIERTLS -server -tcpd"
            f" {lib}/courierpop3login {lib}/courierpop3d Maildir' >>{b}/pop3d-ssl.log 2>&1 &\n")

    def create_accounts(self):
        pass
