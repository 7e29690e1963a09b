"""trtnet.media.files.write_atomically: a failed write leaves the old file and no temporary."""

from __future__ import annotations

import pytest

from trtnet.media.files import write_atomically


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "model.engine"
    write_atomically(out, b"old")
    with pytest.raises(TypeError):
        write_atomically(out, object())  # not bytes: fails inside the write
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.engine"]


def test_the_file_gets_the_umask_permissions_not_the_temporary_files_0600(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        out = write_atomically(tmp_path / "cache.json", b"{}")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o640


def test_a_missing_folder_is_refused_not_created(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_atomically(tmp_path / "no" / "such" / "x.engine", b"x")
    assert list(tmp_path.iterdir()) == []
