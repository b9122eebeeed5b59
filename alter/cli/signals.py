"""Signal names for `apm SIGHUP name`, `apm HUP name` and `apm signal SIGHUP name`."""

from __future__ import annotations

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Optional, Union


def normalize_signal(word: str, strict_case: bool = True) -> Optional[Union[str, int]]:
    """`SIGHUP`/`sighup`/`HUP` -> "SIGHUP"; "10" -> 10; None when it is not a signal.

    With strict_case (a signal used as the command word), a name without the
    SIG prefix must be upper case (`HUP`), so `apm kill` stays an unknown
    command instead of sending SIGKILL.
    """
    import signal

    text = word.strip()
    if text.isdigit():
        number = int(text)
        return number if 0 < number < signal.NSIG else None
    upper = text.upper()
    if not upper.startswith("SIG"):
        if strict_case and not text.isupper():
            return None
        upper = "SIG" + upper
    if upper in ("SIG_DFL", "SIG_IGN", "SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK"):
        return None
    if upper in signal.Signals.__members__:
        return upper
    for base, sign in (("SIGRTMIN", "+"), ("SIGRTMAX", "-")):
        head, sep, offset = upper.partition(sign)
        if head == base and sep and offset.isdigit():
            rtmin, rtmax = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
            number = rtmin + int(offset) if sign == "+" else rtmax - int(offset)
            return upper if rtmin <= number <= rtmax else None
    return None


def signal_names() -> list:
    import signal

    return sorted(name for name in signal.Signals.__members__ if not name.startswith("SIG_"))
