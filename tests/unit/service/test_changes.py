"""Listings of filesystem tars and their comparison: what counts as added, modified and deleted."""

from __future__ import annotations

import io
import tarfile

from sandboxd.service.changes import Entry, compare, read_listing, skipped, unified_diff


def tar_of(entries: list[tuple[str, str, bytes | str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            if kind in ("sym", "link"):
                info.linkname = data
            tar.addfile(info)
    buf.seek(0)
    return buf


def test_listing_of_a_subtree_is_absolute() -> None:
    stream = tar_of([("workspace", "dir", b""), ("workspace/a.txt", "file", b"abc"), ("workspace/l", "sym", "a.txt")])
    listing = read_listing(stream, "/workspace")
    assert set(listing) == {"/workspace", "/workspace/a.txt", "/workspace/l"}
    assert listing["/workspace/a.txt"].size == 3 and listing["/workspace/a.txt"].digest
    assert listing["/workspace/l"] == Entry("symlink", 5, 0o644, "a.txt")


def test_listing_of_the_root_skips_kernel_and_scratch_trees() -> None:
    stream = tar_of(
        [
            ("etc/passwd", "file", b"root"),
            ("proc/1/status", "file", b"x"),
            ("tmp/scratch", "file", b"x"),
            ("etc/hostname", "file", b"sandbox"),
            ("home/sandbox/.cache/pip/x", "file", b"x"),
            ("usr/lib/python3/__pycache__/m.pyc", "file", b"x"),
            ("usr/bin/perl", "file", b"perl"),
            ("usr/bin/perl5", "link", "usr/bin/perl"),
        ]
    )
    listing = read_listing(stream, "/")
    assert set(listing) == {"/etc/passwd", "/usr/bin/perl", "/usr/bin/perl5"}
    assert listing["/usr/bin/perl5"].digest == listing["/usr/bin/perl"].digest, "a hard link has its target's content"
    assert skipped("/run/sandboxd/sock") and not skipped("/running")


def test_compare() -> None:
    before = {
        "/w": Entry("directory", 0, 0o755),
        "/w/same": Entry("file", 1, 0o644, "h1"),
        "/w/edit": Entry("file", 1, 0o644, "h1"),
        "/w/chmod": Entry("file", 1, 0o644, "h1"),
        "/w/gone": Entry("file", 7, 0o644, "h2"),
        "/w/link": Entry("symlink", 1, 0o777, "a"),
    }
    after = {
        "/w": Entry("directory", 0, 0o700),
        "/w/same": Entry("file", 1, 0o644, "h1"),
        "/w/edit": Entry("file", 2, 0o644, "h9"),
        "/w/chmod": Entry("file", 1, 0o755, "h1"),
        "/w/link": Entry("symlink", 1, 0o777, "b"),
        "/w/new": Entry("directory", 0, 0o755),
    }
    changes = {c.path: (c.change, c.size_before, c.size_after) for c in compare(before, after)}
    assert changes == {
        "/w/chmod": ("modified", 1, 1),
        "/w/edit": ("modified", 1, 2),
        "/w/gone": ("deleted", 7, None),
        "/w/link": ("modified", 1, 1),
        "/w/new": ("added", None, 0),
    }


def test_unified_diff_only_for_text() -> None:
    assert unified_diff("/f", b"a\nb\n", b"a\nc\n") == "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    assert unified_diff("/f", None, b"new\n").endswith("+new\n")
    assert unified_diff("/f", b"\x00\x01", b"x") is None
    assert unified_diff("/f", b"\xff\xfe", b"x") is None
