"""Sniffing: the byte counts done in C agree with the plain loops they replaced."""

from __future__ import annotations

import codecs

from hypothesis import given
from hypothesis import strategies as st

from connectors import sniff

# Samples mixing ASCII text, control bytes, UTF-8 sequences (some broken) and Latin-1 bytes.
_PIECES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(alphabet="éèàçÉ€ôü", max_size=16).map(lambda t: t.encode("cp1252")),
    st.sampled_from([b"\x00", b"\x7f", b"\t\r\n", b"\xc3", b"\xef\xbf\xbd"]),
)
SAMPLES = st.lists(_PIECES, max_size=16).map(b"".join)


def controls_by_loop(head: bytes) -> int:
    return sum(1 for b in head if (b < 0x20 and b not in (9, 10, 12, 13)) or b == 0x7F)


def mostly_utf8_by_loop(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
        return True
    except UnicodeDecodeError:
        pass
    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    multibyte = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    return multibyte > 0 and bad <= max(2, multibyte // 20)


@given(SAMPLES)
def test_counts_agree_with_loops(head: bytes) -> None:
    assert sniff._count_bytes(head, sniff._CONTROLS) == controls_by_loop(head)
    assert sniff._count_bytes(head, sniff._HIGH) == sum(1 for b in head if b > 0x7F)
    assert sniff.looks_binary(head) == (
        bool(head) and (b"\x00" in head or controls_by_loop(head) / len(head) > 0.05)
    )


@given(SAMPLES)
def test_mostly_utf8_agrees_with_loop(head: bytes) -> None:
    assert sniff._mostly_utf8(head) == mostly_utf8_by_loop(head)


def test_examples() -> None:
    assert sniff.detect_encoding("prénom;nom\nÉlodie;Dupont\n".encode()) == "utf-8"
    assert sniff.detect_encoding("prénom;nom\nÉlodie;Dupont\n".encode("cp1252")) == "cp1252"
    assert sniff.detect_encoding(b"a;b\n\x01\x02\x03\x04\x05\x06\n") is None
    assert sniff._count_bytes(b"", sniff._HIGH) == 0
