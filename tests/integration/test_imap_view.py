# SPDX-License-Identifier: GPL-2.0-or-later
"""The read-only IMAP view (issue 4): a real mount of the harness's dovecot,
checked with the tools users run and against imaplib on the server side."""

import datetime
import email.utils
import errno
import imaplib
import os
import re
import shutil
import subprocess
import time

import pytest

import corpus
from conftest import mounted, password_file, load_delay_proxy, node_tag

MOUNTED_TYPES = ("fuse.mailfs",)


def status(mnt):
    out = subprocess.run(["getfattr", "--only-values", "-n", "user.mailfs.status", mnt],
                         capture_output=True, text=True, check=True).stdout
    return {k: v for k, v in (l.split(": ", 1) for l in out.splitlines() if ": " in l)}


def counter(mnt, name):
    return int(status(mnt)[name])


def server_folders(dovecot, user="alice"):
    """Decoded folder names as LIST gives them, '/'-joined (the server's delimiter is '/')."""
    with dovecot.imaps(user) as c:
        typ, lines = c.list()
    names = []
    for line in lines:
        m = re.match(rb'\(([^)]*)\) "(.)" (.*)$', line)
        name = m.group(3).decode()
        if name.startswith('"'):
            name = name[1:-1]
        names.append(corpus.mutf7_decode(name))
    return names


def server_messages(dovecot, folder, user="alice"):
    """{uid: (size, internaldate, flags, body)} from imaplib."""
    out = {}
    with dovecot.imaps(user) as c:
        c.select(corpus._q(corpus.mutf7_encode(folder)), readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE FLAGS BODY.PEEK[])")
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))
            size = int(re.search(r"RFC822.SIZE (\d+)", head).group(1))
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
            flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1)
            out[uid] = (size, date, flags, item[1])
    return out


def seen_flags(dovecot, folder, user="alice"):
    with dovecot.imaps(user) as c:
        c.select(corpus._q(corpus.mutf7_encode(folder)), readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
    return {int(re.search(rb"UID (\d+)", d).group(1)): b"\\Seen" in d for d in data if d}


def files_by_uid(path):
    out = {}
    for name in os.listdir(path):
        m = re.match(r"(\d+)[-.]", name)
        if m and name.endswith(".eml"):
            out[int(m.group(1))] = name
    return out


def internaldate_epoch(s):
    return int(datetime.datetime.strptime(s, "%d-%b-%Y %H:%M:%S %z").timestamp())


# -- the tree ---------------------------------------------------------------------

def test_mount_shows_in_proc_mounts_without_secret(mount, dovecot):
    m = mount()
    fields = mounted(m.mountpoint)
    assert fields[2] == "fuse.mailfs"
    assert fields[0] == dovecot.url("alice")
    assert dovecot.users["alice"] not in open("/proc/mounts").read()


def test_find_equals_server_folders(mount, dovecot):
    m = mount()
    out = subprocess.run(["find", m.mountpoint, "-type", "d"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    dirs = {os.path.relpath(p, m.mountpoint) for p in out} - {"."}
    assert dirs == set(server_folders(dovecot))


def test_courier_namespace_is_a_tree(mount, dovecot):
    m = mount(user="carol")
    assert os.path.isdir(os.path.join(m.mountpoint, "INBOX", "Work", "Reports"))


def test_mkdir_at_the_top_of_an_inbox_namespace(mount, dovecot):
    """The server refuses a folder outside its INBOX. namespace without a
    response code: that is EACCES (the server said no), not EIO (which reads
    as a broken link), with a log line saying where new folders go."""
    m = mount(user="carol")
    r = subprocess.run(["mkdir", os.path.join(m.mountpoint, "Projects")], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    assert "make new ones there (mkdir INBOX/Projects)" in m.stderr()
    os.mkdir(os.path.join(m.mountpoint, "INBOX", "Projects"))
    with dovecot.imaps("carol") as c:
        names = [l.decode().rsplit(" ", 1)[-1] for l in c.list()[1]]
        assert "INBOX.Projects" in names and "Projects" not in names
        assert c.delete("INBOX.Projects")[0] == "OK"
    m.unmount(allowed=[r"CREATE refused"])


def test_modes_and_owner(mount):
    m = mount()
    st = os.stat(os.path.join(m.mountpoint, "INBOX"))
    assert st.st_mode & 0o777 == 0o700 and st.st_uid == os.getuid()
    inbox = os.path.join(m.mountpoint, "INBOX")
    for name in os.listdir(inbox)[:5]:
        st = os.stat(os.path.join(inbox, name))
        assert st.st_mode & 0o777 == 0o600


def test_sizes_and_mtimes_before_any_read(mount, dovecot):
    m = mount()
    for folder in ("INBOX", "PyEmail", "Entwürfe"):
        expected = server_messages(dovecot, folder)
        path = os.path.join(m.mountpoint, folder)
        files = files_by_uid(path)
        assert set(files) == set(expected)
        for uid, (size, date, _, _) in expected.items():
            st = os.stat(os.path.join(path, files[uid]))
            assert st.st_size == size, files[uid]
            assert st.st_mtime == internaldate_epoch(date), files[uid]
            assert st.st_blocks == (size + 511) // 512
    assert counter(m.mountpoint, "messages_fetched") == 0


def test_names_follow_the_frozen_rule(mount):
    m = mount()
    names = set(os.listdir(os.path.join(m.mountpoint, "INBOX")))
    for expected in ("1-Meeting_notes_for_Tuesday.eml", "2-Re_Fwd_Quarterly_numbers.eml",
                     "3-Grüße_aus_München.eml", "5-Grüße_aus_Köln.eml", "6-にほん.eml",
                     "7-Pathwithslashes_and_spaces.eml", "13.eml"):
        assert expected in names
    # A name whose UID exists but whose rest differs does not resolve.
    assert not os.path.exists(os.path.join(m.mountpoint, "INBOX", "1-Other.eml"))


def test_names_uid_option(mount):
    m = mount(options={"names": "uid"})
    names = os.listdir(os.path.join(m.mountpoint, "INBOX"))
    assert "1.eml" in names and all(re.fullmatch(r"\d+\.eml", n) for n in names)


# -- contents ---------------------------------------------------------------------

def test_cat_equals_server_bytes(mount, dovecot):
    m = mount()
    for folder in ("INBOX", "PyEmail", "Archive/2024/Q1", "Отправленные"):
        expected = server_messages(dovecot, folder)
        path = os.path.join(m.mountpoint, folder)
        files = files_by_uid(path)
        for uid, (_, _, _, body) in expected.items():
            got = subprocess.run(["cat", os.path.join(path, files[uid])], capture_output=True,
                                 check=True).stdout
            assert got == body, f"{folder}/{files[uid]}"


def test_grep_does_not_set_seen(mount, dovecot):
    before = {f: seen_flags(dovecot, f) for f in ("INBOX", "PyEmail", "Archive")}
    m = mount()
    r = subprocess.run(["grep", "-r", "-l", "Bits from the DPL", m.mountpoint],
                       capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.strip().endswith("Lists/debian/" + os.listdir(
        os.path.join(m.mountpoint, "Lists", "debian"))[0])
    after = {f: seen_flags(dovecot, f) for f in before}
    assert after == before


def test_head_of_big_message_fetches_little(mount):
    m = mount()
    inbox = os.path.join(m.mountpoint, "INBOX")
    big = [n for n in os.listdir(inbox) if "Big_attachment" in n][0]
    assert os.stat(os.path.join(inbox, big)).st_size > 5 * 1024 * 1024
    before = counter(m.mountpoint, "bytes_fetched")
    out = subprocess.run(["head", "-c", "100", os.path.join(inbox, big)], capture_output=True,
                         check=True).stdout
    assert out.startswith(b"From: Alice Example")
    assert counter(m.mountpoint, "bytes_fetched") - before < 1024 * 1024


def test_opening_a_message_for_writing_changes_nothing_until_written(mount, dovecot):
    """Writing would replace the message (test_imap_edit.py); an open for
    writing closed with nothing written sends nothing."""
    def uids():
        with dovecot.imaps("alice") as c:
            c.select("INBOX", readonly=True)
            return c.uid("SEARCH", None, "ALL")[1][0].split()
    m = mount()
    inbox = os.path.join(m.mountpoint, "INBOX")
    name = sorted(os.listdir(inbox))[0]
    before = uids()
    with open(os.path.join(inbox, name), "ab"):
        pass
    assert uids() == before
    assert name in os.listdir(inbox)


# -- cache and freshness --------------------------------------------------------

def test_rsync_twice_second_fetches_nothing(mount, tmp_path):
    m = mount()
    copy = tmp_path / "copy"
    r = subprocess.run(["rsync", "-a", m.mountpoint + "/", str(copy) + "/"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    fetched = counter(m.mountpoint, "messages_fetched")
    bytes_ = counter(m.mountpoint, "bytes_fetched")
    assert fetched > 0
    r = subprocess.run(["rsync", "-a", "--itemize-changes", m.mountpoint + "/", str(copy) + "/"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    transferred = [l for l in r.stdout.splitlines() if l.startswith(">f")]
    assert transferred == []
    assert counter(m.mountpoint, "messages_fetched") == fetched
    assert counter(m.mountpoint, "bytes_fetched") == bytes_
    # The copy is the server's bytes.
    r = subprocess.run(["diff", "-r", m.mountpoint, str(copy)], capture_output=True)
    assert r.returncode == 0


def test_remount_serves_cached_bodies(mount):
    m = mount()
    inbox = os.path.join(m.mountpoint, "INBOX")
    subprocess.run(["cat"] + [os.path.join(inbox, n) for n in os.listdir(inbox)],
                   capture_output=True, check=True)
    cache = m.options["cache_dir"]
    m.unmount()
    m2 = mount(options={"cache_dir": cache})
    inbox = os.path.join(m2.mountpoint, "INBOX")
    subprocess.run(["cat"] + [os.path.join(inbox, n) for n in os.listdir(inbox)],
                   capture_output=True, check=True)
    assert counter(m2.mountpoint, "messages_fetched") == 0
    assert counter(m2.mountpoint, "bytes_fetched") == 0


def test_appended_message_appears_after_refresh(mount, dovecot):
    m = mount(options={"refresh": 1})
    folder = os.path.join(m.mountpoint, "Project X")
    before = set(os.listdir(folder))
    msg = (b"From: Carol <carol@example.org>\r\nTo: alice@example.org\r\n"
           b"Subject: Fresh news\r\nMessage-ID: <fresh@mailfs.test>\r\n\r\nNew.\r\n")
    with dovecot.imaps("alice") as c:
        c.append('"Project X"', "()", None, msg)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = set(os.listdir(folder)) - before
        if new:
            break
        time.sleep(0.5)
    assert len(new) == 1 and list(new)[0].endswith("-Fresh_news.eml")
    with open(os.path.join(folder, list(new)[0]), "rb") as f:
        assert f.read() == msg


# -- extended attributes ---------------------------------------------------------

def test_getfattr_shows_flags_and_decoded_headers(mount):
    m = mount()
    inbox = os.path.join(m.mountpoint, "INBOX")
    name = [n for n in os.listdir(inbox) if n.startswith("3-")][0]
    out = subprocess.run(["getfattr", "-d", "-e", "text", os.path.join(inbox, name)],
                         capture_output=True, text=True, check=True).stdout
    assert 'user.mail.subject="Grüße aus München"' in out
    assert 'user.mail.from="Alice Example <alice@example.org>"' in out
    assert 'user.mail.message-id="<corpus-2@mailfs.test>"' in out
    assert "user.imap.flags=" in out
    flagged = [n for n in os.listdir(inbox) if "Small_attachment" in n][0]
    out = subprocess.run(["getfattr", "-n", "user.imap.flags", "--only-values",
                          os.path.join(inbox, flagged)], capture_output=True, text=True,
                         check=True).stdout
    assert out == "\\Flagged"


def test_headers_of_cached_bodies_ask_the_server_nothing(mount, workdir):
    """rsync -aX after a remount: the user.mail.* attributes of messages whose
    bodies are cached come from the cache, and equal what the server says."""
    def dump(mp):
        folder = os.path.join(mp, "Archive", "2024", "Q1")
        paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
        out = subprocess.run(["getfattr", "-d", "-m", "^user\\.mail\\.", "-e", "text"]
                             + paths, capture_output=True, text=True, check=True).stdout
        return paths, out.replace(mp.lstrip("/"), "MNT")

    cache = os.path.join(workdir, "cache-headers-from-cache")
    m = mount(options={"cache_dir": cache})
    paths, _ = dump(m.mountpoint)
    for p in paths:
        with open(p, "rb") as f:
            f.read()
    m.unmount()
    # No push: its first connection brings INBOX up to date through the
    # pool, a command that may land inside the count below.
    m = mount(options={"cache_dir": cache, "idle": "no"})
    os.listdir(os.path.join(m.mountpoint, "Archive", "2024", "Q1"))
    before = int(status(m.mountpoint)["commands_sent"])
    paths, cached = dump(m.mountpoint)
    assert int(status(m.mountpoint)["commands_sent"]) == before
    assert int(status(m.mountpoint)["headers_from_cache"]) == len(paths)
    # The same values as from the server (a mount with an empty cache).
    fresh = mount(options={"cache_dir": os.path.join(workdir, "cache-headers-fresh")})
    _, served = dump(fresh.mountpoint)
    assert int(status(fresh.mountpoint)["headers_from_cache"]) == 0
    assert cached == served
    assert "user.mail.subject=" in cached


def test_only_user_xattrs_exist(mount):
    """Names outside user.* answer ENOTSUP, not ENODATA: ls -l asks for
    security.selinux and system.posix_acl_access of every file, and stops
    asking for the mount after ENOTSUP (ENODATA cost two FUSE round trips
    per file: 20,000 for a 10,000-message folder)."""
    m = mount()
    inbox = os.path.join(m.mountpoint, "INBOX")
    message = os.path.join(inbox, sorted(os.listdir(inbox))[0])
    for path in (m.mountpoint, inbox, message):
        for name in ("security.selinux", "system.posix_acl_access", "trusted.mailfs"):
            with pytest.raises(OSError) as e:
                os.getxattr(path, name)
            assert e.value.errno == errno.ENOTSUP, (path, name)
    with pytest.raises(OSError) as e:
        os.getxattr(message, "user.mail.nonesuch")
    assert e.value.errno == errno.ENODATA
    assert os.getxattr(message, "user.mail.subject")
    # What ls makes of it: no ACL '+' and no security context '.' after the mode.
    out = subprocess.run(["ls", "-l", inbox], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[1:] and all(line[10] == " " for line in out[1:])


def test_statfs_is_never_zero(mount):
    m = mount()
    st = os.statvfs(m.mountpoint)
    assert st.f_bavail > 0 and st.f_namemax == 255


# -- bad input ---------------------------------------------------------------------

def run_mailfs(mailfs_bin, *args, timeout=60):
    mountpoint = os.path.realpath(args[-1])
    before = mounted(mountpoint)
    r = subprocess.run([mailfs_bin, "-f", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    # Nothing (new) mounted there: other mounts of the machine may come and go.
    assert mounted(mountpoint) == before
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    return r.returncode, lines


@pytest.fixture
def mnt_dir(workdir, request):
    path = os.path.join(workdir, "bad-" + node_tag(request))
    os.makedirs(path, exist_ok=True)
    return path


def base_opts(dovecot, workdir, user="alice", **extra):
    opts = {"ca_file": dovecot.ca, "password_file": password_file(workdir, dovecot, user),
            "cache_dir": os.path.join(workdir, "cache-bad")}
    opts.update(extra)
    return ",".join(f"{k}={v}" for k, v in opts.items())


@pytest.mark.parametrize("case", ["unknown-option", "malformed-url", "unreachable",
                                  "refused-certificate", "wrong-password", "missing-mountpoint"])
def test_bad_input_one_line_nothing_mounted(mailfs_bin, dovecot, workdir, mnt_dir, case):
    url = dovecot.url("alice")
    opts = base_opts(dovecot, workdir)
    if case == "unknown-option":
        args = ["-o", opts + ",frobnicate=1", url, mnt_dir]
        keyword = "frobnicate"
    elif case == "malformed-url":
        args = ["-o", opts, "imaps://alice@", mnt_dir]
        keyword = "URL|url|host"
    elif case == "unreachable":
        from mailserver import free_port
        args = ["-o", opts, f"imaps://alice@127.0.0.1:{free_port()}", mnt_dir]
        keyword = "connect|refused"
    elif case == "refused-certificate":
        args = ["-o", opts.replace(dovecot.ca, dovecot.other_ca), url, mnt_dir]
        keyword = "tls_fingerprint="
    elif case == "wrong-password":
        pw = os.path.join(workdir, "wrong-pw")
        with open(pw, "w") as f:
            f.write("not-it\n")
        os.chmod(pw, 0o600)
        args = ["-o", base_opts(dovecot, workdir, password_file=pw), url, mnt_dir]
        keyword = "Authentication failed"
    else:
        args = ["-o", opts, url, mnt_dir + "-missing"]
        keyword = "missing|No such file"
    rc, lines = run_mailfs(mailfs_bin, *args)
    assert rc != 0
    assert len(lines) == 1, lines
    assert re.search(keyword, lines[0]), lines


def test_busy_mountpoint_and_same_account(mount, mailfs_bin, dovecot, workdir):
    m = mount()
    # The same mountpoint again: busy.
    rc, lines = run_mailfs(mailfs_bin, "-o", base_opts(dovecot, workdir), dovecot.url("alice"),
                           m.mountpoint)
    assert rc != 0 and len(lines) == 1 and "busy" in lines[0], lines
    # The same account (same cache) elsewhere: refused.
    other = os.path.join(workdir, "same-account")
    os.makedirs(other, exist_ok=True)
    rc, lines = run_mailfs(mailfs_bin, "-o",
                           base_opts(dovecot, workdir, cache_dir=m.options["cache_dir"]),
                           dovecot.url("alice"), other)
    assert rc != 0 and len(lines) == 1 and "already mounted" in lines[0], lines


def test_exclude_hides_mailboxes(mount):
    m = mount(options={"exclude": "Archive*;Project X"})
    names = set(os.listdir(m.mountpoint))
    assert "Archive" not in names and "Project X" not in names
    assert "INBOX" in names and "Entwürfe" in names


def test_mark_seen_sets_seen_when_reading(mount, dovecot):
    m = mount(options={"mark_seen": "yes"})
    folder = os.path.join(m.mountpoint, "Archive", "2024", "Q1")
    before = seen_flags(dovecot, "Archive/2024/Q1")
    files = files_by_uid(folder)
    uid = min(files)
    assert not before[uid]
    with open(os.path.join(folder, files[uid]), "rb") as f:
        f.read()
    after = seen_flags(dovecot, "Archive/2024/Q1")
    assert after[uid]
    assert {u: s for u, s in after.items() if u != uid} == \
        {u: s for u, s in before.items() if u != uid}


def test_sequential_reader_is_prefetched(mount, dovecot):
    m = mount()
    folder = os.path.join(m.mountpoint, "PyEmail")
    names = sorted(os.listdir(folder))
    expected = server_messages(dovecot, "PyEmail")
    for i, name in enumerate(names):
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        uid = int(name.split("-")[0].split(".")[0])
        assert data == expected[uid][3], name
        if i == 1:
            # Two files read one after another: the next ones come ahead
            # (waited for here, so that a fast reader cannot outrun them).
            deadline = time.monotonic() + 30
            while int(status(m.mountpoint)["prefetched_messages"]) == 0:
                assert time.monotonic() < deadline, "nothing was prefetched"
                time.sleep(0.1)
    # Most bodies arrived ahead of the reader, not on its opens.
    assert int(status(m.mountpoint)["messages_fetched"]) < len(names)


def test_walk_is_prefetched_from_its_first_open(mount, dovecot):
    """rsync, grep -r and tar list a folder, then open its first file: the
    walk is prefetched from that first open on."""
    m = mount()
    folder = os.path.join(m.mountpoint, "PyEmail")
    names = sorted(os.listdir(folder))
    assert len(names) > 3
    with open(os.path.join(folder, names[0]), "rb") as f:
        f.read()
    deadline = time.monotonic() + 30
    while int(status(m.mountpoint)["prefetched_messages"]) == 0:
        assert time.monotonic() < deadline, "nothing was prefetched after the first open"
        time.sleep(0.1)
    expected = server_messages(dovecot, "PyEmail")
    for name in names[1:]:
        with open(os.path.join(folder, name), "rb") as f:
            assert f.read() == expected[int(name.split("-")[0].split(".")[0])][3], name


def test_one_file_picked_after_ls_is_not_prefetched(mount):
    """ls -l, then one file from the middle: a person reading, not a walk."""
    m = mount()
    folder = os.path.join(m.mountpoint, "PyEmail")
    subprocess.run(["ls", "-l", folder], check=True, stdout=subprocess.DEVNULL)
    names = sorted(os.listdir(folder))
    with open(os.path.join(folder, names[len(names) // 2]), "rb") as f:
        f.read()
    time.sleep(2)  # a prefetch would have started by now
    assert int(status(m.mountpoint)["prefetched_messages"]) == 0
    assert int(status(m.mountpoint)["messages_fetched"]) == 1

def wait_counter(mnt, name, at_least, timeout=30):
    deadline = time.monotonic() + timeout
    while counter(mnt, name) < at_least:
        assert time.monotonic() < deadline, f"{name} stayed at {counter(mnt, name)}"
        time.sleep(0.1)


def test_a_walk_lists_the_next_folders_ahead(mount, dovecot):
    """rsync, find and ls -R read folder after folder, each listing a round
    trip: a folder read right after another (within 2 s) has the next
    folders of the walk (depth first, name order, up to 32) listed in the
    background, in one burst.
    One folder read on its own lists nothing more."""
    m = mount(options={"idle": "no"})
    mp = m.mountpoint
    os.listdir(os.path.join(mp, "Archive"))
    time.sleep(2.5)
    os.listdir(os.path.join(mp, "Archive", "2024"))
    time.sleep(2.5)
    assert counter(mp, "listings_full") == 2
    # A walk: Project X right after Lists/debian. Ahead of it: PyEmail,
    # Sent, Trash, Отправленные (the end of the walk).
    os.listdir(os.path.join(mp, "Lists", "debian"))
    os.listdir(os.path.join(mp, "Project X"))
    wait_counter(mp, "listings_full", 4 + 4)
    sent = counter(mp, "commands_sent")
    for folder in ("PyEmail", "Sent", "Trash", "Отправленные"):
        assert sorted(files_by_uid(os.path.join(mp, folder))) == \
            sorted(server_messages(dovecot, folder)), folder
    # Listed already and fresh: the walk itself sent nothing for them.
    assert counter(mp, "commands_sent") == sent
    assert counter(mp, "listings_full") == 8

def test_a_tree_walk_fetches_the_next_folders_ahead(mount, dovecot):
    """A walk that enters a folder has the first messages of the folders it
    comes to next fetched meanwhile (rsync of a whole mount otherwise starts
    each small folder with round trips): it then reads them from the cache."""
    m = mount(options={"idle": "no"})
    mp = m.mountpoint
    # A tree walk: Project X right after Lists/debian; PyEmail and the rest
    # are listed ahead.
    os.listdir(os.path.join(mp, "Lists", "debian"))
    names = sorted(os.listdir(os.path.join(mp, "Project X")))
    wait_counter(mp, "listings_full", 6)
    with open(os.path.join(mp, "Project X", names[0]), "rb") as f:
        f.read()
    expected = server_messages(dovecot, "PyEmail")
    wait_counter(mp, "prefetched_messages", len(expected))
    fetched = counter(mp, "messages_fetched")
    folder = os.path.join(mp, "PyEmail")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            assert f.read() == expected[int(name.split("-")[0].split(".")[0])][3], name
    assert counter(mp, "messages_fetched") == fetched


def test_a_walk_fetches_each_body_once_into_its_own_folder(mount, dovecot, tmp_path):
    """The prefetcher runs on from one folder into the next: the next
    folder's EXAMINE and fetches go out while the last answers of the one
    before still come. Across folders whose messages share UIDs, rsync gets
    every message's own bytes, and no body is fetched twice."""
    # Through a delay: the answers of the folder before and of the next
    # one then arrive in the same reads, as on a real link. Twice, each on
    # an empty cache: how the answers fall into reads varies.
    proxy = load_delay_proxy().start("127.0.0.1", dovecot.ports["imaps"], 60)
    stats = []
    try:
        for run in range(2):
            m = mount(options={"idle": "no", "cache_dir": str(tmp_path / f"cache{run}")},
                      source=f"imaps://alice@localhost:{proxy.port}")
            copy = tmp_path / f"copy{run}"
            subprocess.run(["rsync", "-a", m.mountpoint + "/", str(copy) + "/"], check=True)
            stats.append(status(m.mountpoint))
            m.unmount()
    finally:
        proxy.stop()
    served = 0
    for folder in server_folders(dovecot):
        try:
            expected = server_messages(dovecot, folder)
        except imaplib.IMAP4.error:
            continue  # \\Noselect
        served += sum(size for size, _, _, _ in expected.values())
        for run in range(2):
            got = files_by_uid(tmp_path / f"copy{run}" / folder)
            assert sorted(got) == sorted(expected), folder
            for uid, name in got.items():
                assert (tmp_path / f"copy{run}" / folder / name).read_bytes() == \
                    expected[uid][3], (folder, name)
    for st in stats:
        assert int(st["prefetched_messages"]) > 0
        # Every body that crossed the link was kept: none was taken for
        # another folder's, or fetched twice.
        assert int(st["bytes_fetched_ahead_unused"]) == 0
        fetched = int(st["bytes_fetched"]) + int(st["prefetched_bytes"])
        # The readers' first ranges ask one byte past RFC822.SIZE (a size check).
        assert served <= fetched <= served * 1.02


def test_prefetch_off(mount):
    m = mount(options={"prefetch": 0})
    folder = os.path.join(m.mountpoint, "PyEmail")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            f.read()
    assert "prefetched_messages" not in status(m.mountpoint)
