"""The shared rules for student-controlled text and files (autograder/untrusted.py)."""

from __future__ import annotations

import os

import pytest

from convpset.autograder.untrusted import (
    StudentFileError,
    csv_text,
    is_safe_name,
    read_bounded,
    safe_name,
    sha256_bounded,
    terminal_text,
)


@pytest.mark.parametrize("payload", ["\x1b]52;c;ZXZpbA==\x07", "\x1b[2J", "\x1b]8;;http://x\x1b\\a",
                                     "a\u202eb", "\x9b31m", "x\ry"])
def test_terminal_text_has_no_controls(payload):
    out = terminal_text(payload)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e
                   for c in out)
    assert "\\x" in out or "\\u" in out


def test_terminal_text_keeps_newlines_only_when_asked():
    assert terminal_text("a\nb", newlines=True) == "a\nb"
    assert terminal_text("a\nb") == "a\\x0ab"
    assert terminal_text("Анна Иванова") == "Анна Иванова"
    assert len(terminal_text("x" * 10_000, limit=50)) == 51


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(A1)",
                                  "-2+3", "\tx", "\rx"])
def test_csv_text_neutralises_formulas(cell):
    assert csv_text(cell) == "'" + cell


def test_csv_text_keeps_plain_text():
    assert csv_text("s001") == "s001"
    assert csv_text("Anna, \"Ivanova\"") == "Anna, \"Ivanova\""


def test_safe_name():
    assert safe_name("s001") == "s001"
    for bad in ["../../etc", "a/b", "=cmd", "\x1b[2J", "con", "x" * 200, "Анна", ".hidden", "a."]:
        name = safe_name(bad)
        assert is_safe_name(name) and "/" not in name
    assert safe_name("a/b") != safe_name("a:b")


def test_read_bounded(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert read_bounded(f, 3) == b"abc"
    assert len(sha256_bounded(f, 3)) == 64
    with pytest.raises(StudentFileError) as e:
        read_bounded(f, 2)
    assert e.value.reason == "too_large"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(StudentFileError) as e:
        read_bounded(fifo, 10)
    assert e.value.reason == "not_regular"
    link = tmp_path / "link"
    link.symlink_to(f)
    with pytest.raises(StudentFileError) as e:
        sha256_bounded(link, 10)
    assert e.value.reason == "link"
    with pytest.raises(StudentFileError) as e:
        read_bounded(tmp_path / "nope", 10)
    assert e.value.reason == "missing"
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as fh:
        fh.truncate(100 * 2**30)
    with pytest.raises(StudentFileError) as e:
        sha256_bounded(sparse, 10_000)
    assert e.value.reason == "too_large"
