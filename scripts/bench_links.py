# SPDX-License-Identifier: GPL-2.0-or-later
"""The links scenario of scripts/bench: one inode per message across folders.

A private Cyrus IMAP (tests/integration/unpacked_servers.py; Cyrus offers
OBJECTID, RFC 8474) holds one account of --n messages shaped like the main
corpus (the same generator, so the same sizes and bytes); 30% of them are
also in one or two other folders, copied there with UID COPY on the server,
so every copy keeps its EMAILID. Timed, --runs times each, medians:

  mailfs rsync -aH   cold: rsync -aH MOUNT/ backup/ on a fresh mount with an
                     empty cache (a message in three folders is one file with
                     three names, so stored once)
  mailfs rsync -a    the same without -H: every copy stored (what the mount
                     costs without links)
  mbsync -a          of the same account into an empty Maildir (every copy
                     stored)

For each: seconds, the backup's bytes as du -sb counts them (hard links once,
directories included), the messages' bytes with each file counted once,
names and distinct files; and for mailfs the bytes it fetched
(user.mailfs.status of the mount root: bytes_fetched + prefetched_bytes).
The targets: the -aH backup's message bytes and the bytes fetched equal the
unique messages' RFC822.SIZE sum, and -aH takes no longer than -a.

scripts/bench calls Links(bench, tools).run() with its Bench and its own
module (Mount, timed, corpus_plan, make_message, _filler, RawImap, log);
the results stay here: render() and doc_notes() give the text.
"""

import imaplib
import os
import random
import re
import statistics
import subprocess

import unpacked_servers

USER = "lena"
PASSWORD = "lena-Secret-5"
# The share of messages in more than one folder, and the seed that picks
# them and their other folders (the messages themselves come from the main
# corpus's generator and seeds).
SHARED = 0.30
SEED = 20261207
TOOLS = [("mailfs", "rsync -aH"), ("mailfs", "rsync -a"), ("mbsync", "mbsync -a")]


def links_plan(tools, n, shape="small"):
    """[(folders, kind, size, internaldate, seen)] for message 0..n-1: the main
    corpus's plan of that shape (its folder first) plus one or two other
    folders for 30%."""
    rng = random.Random(SEED)
    every = ["INBOX"] + tools.folders_of(shape)
    shared = set(rng.sample(range(n), round(n * SHARED)))
    plan = []
    for i, (home, kind, size, date, seen) in enumerate(tools.corpus_plan(n, shape)):
        folders = [home]
        if i in shared:
            folders += rng.sample([f for f in every if f != home], rng.choice((1, 2)))
        plan.append((folders, kind, size, date, seen))
    return plan


def tree_bytes(path):
    """(names, distinct files, bytes with each file once) of the regular files
    under path, dot files (mbsync's state) left out."""
    names, seen, nbytes = 0, set(), 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            if name.startswith("."):
                continue
            st = os.lstat(os.path.join(dirpath, name))
            names += 1
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                nbytes += st.st_size
    return names, len(seen), nbytes


def du_bytes(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


class Links:
    def __init__(self, bench, tools):
        self.bench = bench
        self.tools = tools
        self.rows = {}      # tool label -> [(seconds, du, names, files, bytes, fetched)]
        self.corpus = None  # what the account holds, from the plan and the server

    # -- the account ------------------------------------------------------------
    def start_server(self):
        b = self.bench
        self.server = unpacked_servers.Cyrus(os.path.join(b.work, "cyrus"),
                                             {USER: PASSWORD}, altnamespace=True)
        b.cleanup.push(self.server.stop)
        self.server.start()
        self.port = self.server.ports["imaps"]
        if b.rtt > 0:
            proxy = self.tools.delay_proxy.start("127.0.0.1", self.port, rtt_ms=b.rtt)
            b.cleanup.push(proxy.stop)
            self.port = proxy.port
        self.password_file = os.path.join(b.work, f"{USER}.password")
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(PASSWORD + "\n")

    def seed(self, n):
        """APPEND each message to its first folder, then UID COPY the shared
        ones into their other folders, one command per pair of folders."""
        t = self.tools
        plan = links_plan(t, n, self.bench.shape)
        rng = random.Random(7)            # as the main corpus's write_corpus
        filler = t._filler(random.Random(11))
        unique = entries = 0
        copies = {}                       # (from, to) -> [uid]
        with self.server.imaps(USER) as c:
            typ, data = c.namespace()
            m = re.match(rb'\(\("([^"]*)" "(.)"\)', data[0])
            prefix, sep = m.group(1).decode(), m.group(2).decode()
            self.name = {f: f if f == "INBOX" else prefix + f.replace("/", sep)
                         for f in ["INBOX"] + t.folders_of(self.bench.shape)}
            for f in t.folders_of(self.bench.shape):
                typ, data = c.create(self.name[f])
                if typ != "OK":
                    raise RuntimeError(f"CREATE {f}: {data}")
            for i, (folders, kind, size, date, seen) in enumerate(plan):
                data = t.make_message(i, kind, size, date, rng, filler).replace(b"\n", b"\r\n")
                typ, resp = c.append(self.name[folders[0]], "(\\Seen)" if seen else "()",
                                     imaplib.Time2Internaldate(date), data)
                m = re.search(rb"APPENDUID \d+ (\d+)", resp[0] or b"")
                if typ != "OK" or not m:
                    raise RuntimeError(f"APPEND to {folders[0]}: {resp}")
                unique += len(data)
                entries += len(data) * len(folders)
                for other in folders[1:]:
                    copies.setdefault((folders[0], other), []).append(m.group(1).decode())
            for (src, dst), uids in sorted(copies.items()):
                c.select(self.name[src], readonly=True)
                typ, data = c.uid("COPY", ",".join(uids), self.name[dst])
                if typ != "OK":
                    raise RuntimeError(f"UID COPY {src} -> {dst}: {data}")
        self.corpus = {"messages": n, "names": sum(len(p[0]) for p in plan),
                       "shared": sum(1 for p in plan if len(p[0]) > 1),
                       "in three": sum(1 for p in plan if len(p[0]) > 2),
                       "unique bytes": unique, "all bytes": entries}
        self.check_identities()

    def check_identities(self):
        """The server must see what the plan made: as many EMAILIDs as
        messages, each listed once per folder, and the unique messages'
        RFC822.SIZE sum as the plan computed it. A server without OBJECTID
        fails here (the scenario measures nothing there)."""
        ids, names = {}, 0
        with self.server.imaps(USER) as c:
            typ, data = c.capability()
            if b"OBJECTID" not in data[0].upper().split():
                raise RuntimeError(f"the server does not offer OBJECTID: {data}")
            for f, name in self.name.items():
                typ, _ = c.select(name, readonly=True)
                typ, data = c.fetch("1:*", "(EMAILID RFC822.SIZE)")
                if typ != "OK":
                    raise RuntimeError(f"FETCH EMAILID in {f}: {data} (no OBJECTID?)")
                for line in data:
                    if not line:
                        continue
                    m = re.search(rb"EMAILID \(([^)]+)\).*RFC822\.SIZE (\d+)|"
                                  rb"RFC822\.SIZE (\d+).*EMAILID \(([^)]+)\)", line)
                    if not m:
                        raise RuntimeError(f"unexpected FETCH response in {f}: {line[:200]}")
                    eid, size = (m.group(1), m.group(2)) if m.group(1) else \
                        (m.group(4), m.group(3))
                    ids[eid] = int(size)
                    names += 1
        c = self.corpus
        got = (len(ids), names, sum(ids.values()))
        want = (c["messages"], c["names"], c["unique bytes"])
        if got != want:
            raise RuntimeError(f"Cyrus holds (messages, names, unique bytes) {got}, "
                               f"the plan {want}")

    # -- the runs -------------------------------------------------------------
    def mailfs(self, flags):
        b, t = self.bench, self.tools
        backup = b.fresh_dir("links-backup")
        m = t.Mount(b, b.fresh_dir("links-cache"), url=f"imaps://{USER}@localhost:{self.port}",
                    opts={"ca_file": self.server.ca, "password_file": self.password_file,
                          "cache_size": self.cache_size}).start()
        try:
            dt = t.timed(["rsync", flags, m.mountpoint + "/", backup + "/"])
            st = m.status()
        finally:
            m.stop()
        fetched = st.get("bytes_fetched", 0) + st.get("prefetched_bytes", 0)
        self.record(("mailfs", f"rsync {flags}"), dt, backup, fetched)

    def mbsync(self):
        b = self.bench
        dt, maildir = b.run_mbsync(port=self.port, user=USER,
                                   password_file=self.password_file, ca=self.server.ca)
        self.record(("mbsync", "mbsync -a"), dt, maildir, None)

    def record(self, tool, seconds, tree, fetched):
        names, files, nbytes = tree_bytes(tree)
        if names != self.corpus["names"]:
            raise RuntimeError(f"{' '.join(tool)} stored {names} messages, the account "
                               f"holds {self.corpus['names']}")
        self.rows.setdefault(tool, []).append(
            (seconds, du_bytes(tree), names, files, nbytes, fetched))
        self.tools.log(f"links {tool[1]:10} {seconds:7.2f}s, {files} files, "
                       f"{nbytes} message bytes" +
                       (f", fetched {fetched}" if fetched is not None else ""))

    def run(self):
        b, t, n = self.bench, self.tools, self.bench.args.n
        t.log(f"links: starting Cyrus and writing {n} messages ({SHARED:.0%} copied "
              "into other folders)")
        self.start_server()
        self.seed(n)
        c = self.corpus
        self.cache_size = f"{(c['all bytes'] >> 20) * 2 + 512}M"
        # Let Cyrus settle and warm the page cache, as the main corpus does.
        with t.RawImap("127.0.0.1", self.port, self.server.ca, USER, PASSWORD) as raw:
            raw.fetch_all()
        t.log(f"links: {c['names']} names of {n} messages, {c['unique bytes'] / 1e6:.0f} MB "
              f"unique, {c['all bytes'] / 1e6:.0f} MB with every copy")
        # Turn about, so neither copy always runs right after the other.
        for run in range(b.args.runs):
            for flags in (("-aH", "-a") if run % 2 == 0 else ("-a", "-aH")):
                self.mailfs(flags)
        for _ in range(b.args.runs):
            self.mbsync()
        return self

    # -- output ---------------------------------------------------------------
    def median(self, tool, i):
        return statistics.median(r[i] for r in self.rows[tool])

    def describe(self):
        c = self.corpus
        return (f"{c['messages']} messages on Cyrus (the main corpus's {self.bench.shape} shape), "
                f"{c['shared']} of them ({c['shared'] / c['messages']:.0%}) also in other "
                f"folders by UID COPY ({c['in three']} in three folders): {c['names']} names; "
                f"unique messages' RFC822.SIZE sum {c['unique bytes']} bytes, "
                f"{c['all bytes']} with every copy")

    def render(self):
        base = self.median(TOOLS[1], 0)
        lines = ["| tool | command | s (median) | / rsync -a | du -sb | message bytes "
                 "(each file once) | names | files | bytes fetched |", "|" + "---|" * 9]
        for tool in TOOLS:
            if tool not in self.rows:
                continue
            fetched = self.median(tool, 5) if tool[0] == "mailfs" else None
            lines.append(
                f"| {tool[0]} | `{tool[1]}` | {self.median(tool, 0):.3f} | "
                f"{self.median(tool, 0) / base:.2f}x | {self.median(tool, 1):.0f} | "
                f"{self.median(tool, 4):.0f} | {self.median(tool, 2):.0f} | "
                f"{self.median(tool, 3):.0f} | "
                f"{'-' if fetched is None else f'{fetched:.0f}'} |")
        c = self.corpus
        lines.append(f"| target | each message once | | | | {c['unique bytes']} | {c['names']} | "
                     f"{c['messages']} | {c['unique bytes']} |")
        return "\n".join(lines)

    def notes(self):
        c, h, a = self.corpus, TOOLS[0], TOOLS[1]
        unique = c["unique bytes"]
        stored = self.median(h, 4)
        fetched = self.median(h, 5)
        ratio = self.median(h, 0) / self.median(a, 0)
        return [
            f"target: the -aH backup holds the unique messages' bytes ({unique}): "
            f"{stored:.0f}, {stored / unique:.3f}x "
            f"({'met' if stored == unique else 'missed'}); du -sb adds the directories",
            f"target: mailfs fetches the unique messages' bytes once: {fetched:.0f}, "
            f"{fetched / unique:.3f}x ({'met' if fetched == unique else 'missed'})",
            f"target: rsync -aH takes no longer than rsync -a: {ratio:.2f}x "
            f"({'met' if ratio <= 1.0 else 'missed'})",
            "mbsync stores every copy, with LF line ends (RFC822.SIZE counts CRLF); "
            "its du -sb also counts its state files and each folder's cur/new/tmp",
        ]
