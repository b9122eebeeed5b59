"""ban_path patterns (the four modes) and request-path normalisation."""

from __future__ import annotations

import pytest

from alter.proxy.patterns import BadPath, PatternSet, classify, normalized_path, path_candidates, split_target


@pytest.mark.parametrize(
    "pattern, mode, text",
    [
        ("*.php", "ends", ".php"),
        ("/.git*", "starts", "/.git"),
        ("*wp-*", "contains", "wp-"),
        ("/admin/login", "exact", "/admin/login"),
        ("*", "any", ""),
        ("**", "any", ""),
        ("/a*b", "glob", "/a*b"),
    ],
)
def test_classify(pattern: str, mode: str, text: str) -> None:
    assert classify(pattern) == (mode, text)


@pytest.mark.parametrize(
    "pattern, path, hit",
    [
        ("*.php", "/index.php", True),
        ("*.php", "/index.php5", False),
        ("*.env", "/.env", True),
        ("/.git*", "/.git/config", True),
        ("/.git*", "/x/.git/config", False),
        ("*wp-*", "/blog/wp-admin/", True),
        ("*wp-*", "/wordpress", False),
        ("/admin/login", "/admin/login", True),
        ("/admin/login", "/admin/login/x", False),
        ("*", "/anything", True),
        ("/a*b", "/a/x/b", True),
        ("/a*b", "/a/x/c", False),
        ("*.PHP", "/x.php", True),  # case-insensitive
    ],
)
def test_patterns(pattern: str, path: str, hit: bool) -> None:
    assert bool(PatternSet([pattern]).match(path)) is hit


def test_patternset_returns_the_pattern() -> None:
    ps = PatternSet(["*.php", " ", "/.git*"])
    assert ps.match("/.git/HEAD") == "/.git*"
    assert ps.match_any(["/x", "/y.php"]) == "*.php"
    assert not PatternSet([])


def test_split_target() -> None:
    assert split_target("/a/b?c=d#e") == "/a/b"
    assert split_target("http://host:8/x/y?z") == "/x/y"
    assert split_target("https://host") == "/"


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/a/./b/../c", "/a/c"),
        ("//a///b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/%2e%2e/x".replace("%2e%2e", "a/%2e%2e"), "/x"),
        ("/%61dmin", "/admin"),
    ],
)
def test_normalized(target: str, expected: str) -> None:
    assert normalized_path(target) == expected


def test_candidates_cover_encodings() -> None:
    forms = path_candidates("/%252e%252egit/..%2fconfig")
    assert "/%252e%252egit/..%2fconfig" in forms  # the raw spelling
    assert any(f.startswith("/..git") or f == "/config" for f in forms)
    assert "/admin/login" in path_candidates("/admin/login;jsessionid=xyz")
    assert "/admin/login" in path_candidates("/admin\\login")
    assert "/admin/login" in path_candidates("/admin/login/")


@pytest.mark.parametrize(
    "target", ["/..", "/a/../../etc/passwd", "/%2e%2e/x", "/a%00b", "/a%0d%0ab", "/%252e%252e/%252e%252e/x"]
)
def test_bad_paths(target: str) -> None:
    with pytest.raises(BadPath):
        path_candidates(target)
