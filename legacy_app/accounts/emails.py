"""One canonical form per email address: what uniqueness and `GET /users/?email=` compare.

Two addresses a person would call the same get the same canonical form; the email a user typed
is kept as the account's display email (`users.email`), the form goes in `users.email_canonical`.

- local part: NFKC (fullwidth `ｋａｔｅ` is `kate`, the ligature in `oﬀice` is `ff`, `x²` is `x2`),
  then full case folding (`straße` and `STRASSE` are `strasse`, final sigma `ς` is `σ`), then
  one explicit step: Python's case folding is the untailored Unicode one, which folds `İ` (dotted
  capital I) to `i` + U+0307 COMBINING DOT ABOVE and leaves `ı` (dotless i) alone; both, and `i` +
  U+0307 however it was typed, become plain `i`, so `İNFO`, `ınfo` and `info` are one address.
  Then NFKC again, as case folding may leave a string that is not normalised. Accents stay (`é`
  is not `e`), and so do dots and plus-tags (`a+x@` is not `a@`): mail servers deliver those
  apart.
- domain: IDNA 2008 with UTS 46 mapping, non-transitional (the `idna` package), written in
  Unicode: a punycode domain and its Unicode form are one domain, `fass.de` and `faß.de` are two
  (they are two registrations).
"""
# Stored in users.email_canonical (revision 0003 filled it for existing rows): a change to these
# rules needs a new revision that recomputes the column, or lookups miss the rows stored before it.
import unicodedata

import idna

# Longer canonical forms are refused at registration (a few characters expand under NFKC).
CANONICAL_MAX_LENGTH = 255

_DOTLESS_I = "\u0131"
_I_WITH_DOT = "i\u0307"  # what case folding makes of U+0130, or typed as two code points


def canonical_email(address: str) -> str:
    """The canonical form of a display email (as UserCreate leaves it), or of any stored one."""
    local, at, domain = address.strip().rpartition("@")
    if not at:  # not an address (a stored row older than validation): folded whole, still comparable
        return _fold(address.strip())
    return f"{_fold(local)}@{_domain(domain)}"


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = folded.replace(_I_WITH_DOT, "i").replace(_DOTLESS_I, "i")
    return unicodedata.normalize("NFKC", folded)


def _domain(domain: str) -> str:
    try:
        return idna.decode(idna.encode(domain, uts46=True, transitional=False))
    except (idna.IDNAError, UnicodeError):
        # Not a valid IDNA name (a row stored before validation, or a lookup of one): the same
        # folding as the local part, so it still compares as registration stored it.
        return _fold(domain)
