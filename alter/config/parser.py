"""apm.conf text -> a tree of statements (no option knowledge here).

Grammar::

    file       := statement*
    statement  := KEY[:] value-word* ";"
                | KEY[:] arg-word* "{" statement* "}"
                | ";"                                  (empty statement, ignored)

A statement's words must stay on the key's line, except after a word ending in
`,` (a list continued on the next line).  A word that starts a new line
otherwise means the `;` before it is missing: the parser reports that at the
end of the previous line and starts a new statement, so one missing `;` costs
exactly one error.

The parser never raises.  Errors carry line/col; the loader adds the file name.
Recovery: an unexpected `}` is skipped, an unclosed block ends at end of file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from alter.config.lexer import EOF, LBRACE, RBRACE, SEMI, WORD, Comment, LexError, Token, tokenize

_KEY_COLON_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*):(.*)$", re.DOTALL)


@dataclass
class Statement:
    key: str
    line: int
    col: int
    words: List[Token] = field(default_factory=list)
    block: Optional[List[Statement]] = None  # None: a `key value;` statement
    lead_comments: List[str] = field(default_factory=list)  # own-line comments right above
    trail_comment: str = ""  # a comment after the statement on its last line
    end_line: int = 0
    end_col: int = 0
    file: str = ""  # set by the loader (includes splice statements from other files)


@dataclass
class Parsed:
    statements: List[Statement]
    errors: List[LexError]
    orphans: List[Comment] = field(default_factory=list)  # comments attached to no statement (saveconf keeps them)


class _Parser:
    def __init__(self, tokens: List[Token], comments: List[Comment], errors: List[LexError]) -> None:
        self.tokens = tokens
        self.i = 0
        self.errors = errors
        self.own_line: Dict[int, str] = {c.line: c.text for c in comments if c.own_line}
        self.trailing: Dict[int, Comment] = {c.line: c for c in comments if not c.own_line}

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, hint: str, line: int, col: int) -> None:
        self.errors.append(LexError(message, hint, line, col))

    def statements(self, opener: Optional[Token]) -> List[Statement]:
        out: List[Statement] = []
        while True:
            tok = self.tok
            if tok.kind == EOF:
                if opener is not None:
                    self.error(
                        f"unclosed block: `{{` opened at line {opener.line}, col {opener.col} has no matching `}}`",
                        "add the missing `}`",
                        tok.line,
                        tok.col,
                    )
                return out
            if tok.kind == RBRACE:
                if opener is not None:
                    self.i += 1
                    return out
                self.error("`}` without a matching `{`", "remove it, or open the block it closes", tok.line, tok.col)
                self.i += 1
                continue
            if tok.kind == SEMI:
                self.i += 1
                continue
            if tok.kind == LBRACE:
                self.error(
                    "block without a name: `{` must follow a key such as `worker`",
                    "write `worker { ... }`",
                    tok.line,
                    tok.col,
                )
                self.i += 1
                self.statements(tok)  # parse and drop it, to stay in sync
                continue
            out.append(self.statement())

    def statement(self) -> Statement:
        key_tok = self.tok
        self.i += 1
        stmt = Statement(key="", line=key_tok.line, col=key_tok.col)
        stmt.lead_comments = self.lead_comments(key_tok.line)
        key = key_tok.text
        words: List[Token] = []
        if not key_tok.quoted:
            m = _KEY_COLON_RE.match(key)
            if m:
                key = m.group(1)
                if m.group(2):
                    rest_col = key_tok.col + len(m.group(1)) + 1
                    words.append(
                        Token(WORD, m.group(2), key_tok.line, rest_col, False, False, key_tok.end_line, key_tok.end_col)
                    )
        stmt.key = key
        last = key_tok
        first_value = True
        while True:
            tok = self.tok
            if tok.kind == WORD:
                if tok.line != last.end_line and not (
                    last is not key_tok and last.text.endswith(",") and not last.quoted
                ):
                    self.missing_semi(stmt, words, last)
                    break
                if first_value and not words and tok.text == ":" and not tok.quoted:
                    first_value = False
                    self.i += 1
                    last = tok
                    continue
                first_value = False
                words.append(tok)
                last = tok
                self.i += 1
                continue
            if tok.kind == SEMI:
                self.i += 1
                stmt.end_line, stmt.end_col = tok.line, tok.col + 1
                stmt.trail_comment = self.trail_comment(tok)
                break
            if tok.kind == LBRACE:
                self.i += 1
                stmt.trail_comment = self.trail_comment(tok)
                stmt.block = self.statements(tok)
                closer = self.tokens[self.i - 1]
                stmt.end_line, stmt.end_col = closer.line, closer.end_col
                break
            self.missing_semi(stmt, words, last)  # `}` or end of file
            break
        stmt.words = words
        return stmt

    def missing_semi(self, stmt: Statement, words: List[Token], last: Token) -> None:
        shown = " ".join([stmt.key] + [w.text for w in words])
        if len(shown) > 40:
            shown = shown[:37] + "..."
        self.error(
            f"missing `;` after `{shown}`",
            "end every `key value` statement with `;` (a value continues on the next line only after a trailing comma)",
            last.end_line,
            last.end_col,
        )
        stmt.end_line, stmt.end_col = last.end_line, last.end_col

    def lead_comments(self, line: int) -> List[str]:
        found: List[str] = []
        ln = line - 1
        while ln in self.own_line:
            found.append(self.own_line.pop(ln))
            ln -= 1
        found.reverse()
        return found

    def trail_comment(self, tok: Token) -> str:
        nxt = self.tokens[self.i] if self.i < len(self.tokens) else None
        comment = self.trailing.get(tok.line)
        if comment is None or comment.col < tok.col:
            return ""
        if nxt is not None and nxt.kind != EOF and nxt.line == tok.line:
            return ""  # another statement follows on this line: the comment is its
        del self.trailing[tok.line]
        return comment.text


def parse(text: str, undecodable: bool = False) -> Parsed:
    """Parse config text into statements; errors are returned, never raised."""
    lexed = tokenize(text, undecodable)
    parser = _Parser(lexed.tokens, lexed.comments, list(lexed.errors))
    statements = parser.statements(None)
    parser.errors.sort(key=lambda e: (e.line, e.col))
    orphans = [Comment(text, line, 0, True) for line, text in parser.own_line.items()]
    orphans += list(parser.trailing.values())
    return Parsed(statements, parser.errors, sorted(orphans, key=lambda c: (c.line, c.col)))
