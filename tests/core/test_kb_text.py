"""Search terms for Chinese and English text (pure)."""

from __future__ import annotations

from gateway.kb.text import document, overlap, suggestion_terms, terms


def test_terms_split_cjk_from_latin_and_normalise_width_and_case() -> None:
    assert terms("MySQL连接超时  db-bj-03，网络") == ["mysql", "连接超时", "db-bj-03", "网络"]
    assert terms("ＭｙＳＱＬ 宕机 宕机") == ["mysql", "宕机"]
    assert terms("  ,;  ") == []


def test_suggestion_terms_are_indexable_pieces() -> None:
    found = suggestion_terms("服务器宕机 on db-01: the disk is full")
    assert found[:3] == ["服务器", "务器宕", "器宕机"]
    assert "db-01" in found and "disk" in found and "full" in found
    assert "the" not in found and "on" not in found
    assert suggestion_terms("网络") == []  # two CJK characters: not cheap to look up


def test_overlap_is_the_share_of_terms_found() -> None:
    text = document("MySQL 连接超时", "连接池满", tags=["数据库"])
    assert overlap(["mysql", "连接超", "nothing"], text) == 2 / 3
    assert overlap([], text) == 0.0


def test_control_characters_and_binary_noise_never_reach_the_index_query() -> None:
    noisy = "subject ðï\x11à¡±\x1aá\x00\x00\x00 \x00\x03\x00þÿ " + "ÿ" * 500
    found = terms(noisy)
    assert all(not any(ord(c) < 32 for c in t) for t in found)
    assert max(len(t) for t in found) <= 64
