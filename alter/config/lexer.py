"""Tokenizer for the apm.conf language.

The lexer turns text into WORD, `;`, `{`, `}` tokens and a separate list of
comments (kept for saveconf).  It never raises: problems (unclosed quote, NUL
byte, bad escape) are collected in `Lexed.errors` and lexing carries on.

Words
  A word is a run of characters up to whitespace, `;`, `{` or `}`.  Quoted
  segments ("...", '...', `...`) may appear anywhere in a word and are glued to
  their neighbours like in a shell: `--title="My App"` is the one word
  `--title=My App`.  Quotes are stripped.  Only double quotes know escapes:
  \\\\ \\" \\' \\` \\n \\t \\r, \\uXXXX and \\UXXXXXXXX; any other backslash stays as written
  (`"C:\\dir"` keeps its backslash).  A quoted segment must end on the line it
  starts on (use \\n for a newline).

Comments
  `#` or `//` at the start of a word run to the end of the line.  Inside a word
  they are ordinary characters: `http://host:80/#top` is one word.

Commas are ordinary word characters here; the loader decides, per option,
whether a comma separates list items (see loader.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

WORD = "word"
SEMI = ";"
LBRACE = "{"
RBRACE = "}"
EOF = "eof"

_QUOTES = "\"'`"
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "`": "`", "n": "\n", "t": "\t", "r": "\r"}
_SPACE = " \t\r\n\f\v\ufeff"


@dataclass
class Token:
    kind: str
    text: str
    line: int
    col: int
    quoted: bool = False  # some part of the word was quoted
    broken: bool = False  # the word has a lexical error (already reported): skip its value
    end_line: int = 0
    end_col: int = 0  # column just after the token


@dataclass
class Comment:
    text: str  # without the leading `#` / `//` and surrounding blanks
    line: int
    col: int
    own_line: bool  # nothing but blanks before it on its line


@dataclass
class LexError:
    message: str
    hint: str
    line: int
    col: int


@dataclass
class Lexed:
    tokens: List[Token] = field(default_factory=list)
    comments: List[Comment] = field(default_factory=list)
    errors: List[LexError] = field(default_factory=list)


def decode(data: bytes) -> tuple[str, List[LexError]]:
    """UTF-8 decode; every invalid byte becomes U+FFFD and one error per bad run."""
    errors: List[LexError] = []
    try:
        return data.decode("utf-8"), errors
    except UnicodeDecodeError:
        pass
    pos = 0
    out: List[str] = []
    while pos < len(data):
        try:
            out.append(data[pos:].decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            good = data[pos : pos + exc.start].decode("utf-8")
            out.append(good)
            bad_at = pos + exc.start
            line = data.count(b"\n", 0, bad_at) + 1
            line_start = data.rfind(b"\n", 0, bad_at) + 1
            col = len(data[line_start:bad_at].decode("utf-8", "replace")) + 1
            errors.append(
                LexError(
                    f"invalid UTF-8 byte 0x{data[bad_at]:02x}",
                    "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                    line,
                    col,
                )
            )
            out.append("\ufffd")
            pos = pos + max(exc.end, exc.start + 1)
    return "".join(out), errors


class _Lexer:
    def __init__(self, text: str, undecodable: bool) -> None:
        self.text = text
        self.undecodable = undecodable
        self.pos = 0
        self.line = 1
        self.col = 1
        self.out = Lexed()
        self.line_has_token = False

    def error(self, message: str, hint: str, line: int, col: int) -> None:
        self.out.errors.append(LexError(message, hint, line, col))

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def advance(self) -> str:
        ch = self.text[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
            self.col = 1
            self.line_has_token = False
        else:
            self.col += 1
        return ch

    def run(self) -> Lexed:
        while self.pos < len(self.text):
            ch = self.peek()
            if ch == "\0":
                self.error("NUL byte in config file", "remove it: config files are text", self.line, self.col)
                self.advance()
            elif ch in _SPACE:
                self.advance()
            elif ch == "#" or (ch == "/" and self.peek(1) == "/"):
                self.comment()
            elif ch in ";{}":
                self.out.tokens.append(Token(ch, ch, self.line, self.col, end_line=self.line, end_col=self.col + 1))
                self.line_has_token = True
                self.advance()
            else:
                self.word()
        self.out.tokens.append(Token(EOF, "", self.line, self.col, end_line=self.line, end_col=self.col))
        return self.out

    def comment(self) -> None:
        line, col, own = self.line, self.col, not self.line_has_token
        start = self.pos
        while self.pos < len(self.text) and self.peek() != "\n":
            self.advance()
        raw = self.text[start : self.pos].replace("\0", "")
        raw = raw[1:] if raw.startswith("#") else raw[2:]
        self.out.comments.append(Comment(raw.strip(), line, col, own))

    def word(self) -> None:
        line, col = self.line, self.col
        parts: List[str] = []
        quoted = False
        errors_before = len(self.out.errors)
        while self.pos < len(self.text):
            ch = self.peek()
            if ch in _SPACE or ch in ";{}":
                break
            if ch == "\0":
                self.error("NUL byte in config file", "remove it: config files are text", self.line, self.col)
                self.advance()
                continue
            if ch in _QUOTES:
                quoted = True
                parts.append(self.quoted(ch))
                continue
            parts.append(self.advance())
        broken = len(self.out.errors) > errors_before or (self.undecodable and "\ufffd" in "".join(parts))
        self.out.tokens.append(Token(WORD, "".join(parts), line, col, quoted, broken, self.line, self.col))
        self.line_has_token = True

    def quoted(self, quote: str) -> str:
        line, col, start = self.line, self.col, self.pos
        self.advance()
        chars: List[str] = []
        while True:
            ch = self.peek()
            if ch in ("", "\n"):
                self.error(
                    f"unclosed {quote} quote",
                    f"add the closing {quote} on the same line (write \\n for a newline inside double quotes)",
                    line,
                    col,
                )
                semi = self.text.find(";", start, self.pos)
                if semi == -1:
                    return "".join(chars)
                # Most likely the closing quote belongs before the `;`: resume lexing there.
                self.col -= self.pos - semi
                self.pos = semi
                return self.text[start + 1 : semi]
            if ch == quote:
                self.advance()
                return "".join(chars)
            if ch == "\0":
                self.error("NUL byte in config file", "remove it: config files are text", self.line, self.col)
                self.advance()
                continue
            if ch == "\\" and quote == '"':
                chars.append(self.escape())
                continue
            chars.append(self.advance())

    def escape(self) -> str:
        line, col = self.line, self.col
        nxt = self.peek(1)
        if nxt in _ESCAPES:
            self.advance()
            self.advance()
            return _ESCAPES[nxt]
        if nxt in ("u", "U"):
            size = 4 if nxt == "u" else 8
            digits = self.text[self.pos + 2 : self.pos + 2 + size]
            value = _hex(digits, size)
            if value is None:
                self.error(
                    f"bad \\{nxt} escape: \\{nxt} needs {size} hex digits",
                    'write "\\u00e7" for ç, "\\U0001f600" beyond U+FFFF, or "\\\\" for a backslash',
                    line,
                    col,
                )
                return self.advance()
            for _ in range(size + 2):
                self.advance()
            if value == 0 or 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                self.error(f"\\{nxt}{digits} is not allowed in a config value", "use a visible character", line, col)
                return ""
            return chr(value)
        return self.advance()  # unknown escape: keep the backslash literally


def _hex(digits: str, size: int) -> Optional[int]:
    if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)


def tokenize(text: str, undecodable: bool = False) -> Lexed:
    """Split config text into tokens and comments (never raises).

    `undecodable`: the text came from `decode()` with errors, so U+FFFD marks a
    bad byte (already reported) and words holding one are `broken`.
    """
    return _Lexer(text, undecodable).run()
