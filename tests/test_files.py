"""trtnet.files.write_atomically: a failed write leaves the old file and no temporary."""

from __future__ import annotations

import pytest

from trtnet.files import write_atomically


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "model.engine"
    write_atomically(out, b"old")
    with pytest.raises(TypeError):
        write_atomically(out, object())  # not bytes: fails inside the write
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.engine"]
