"""Progress bars for long work: a live tqdm bar on a terminal; where the output is not a terminal
(a log file, a pipe, a batch job) at most one plain line every ``LOG_INTERVAL`` seconds, so logs stay
readable.

    for frame in progress(dataset, desc="reading", unit="frame"): ...
    bar = progress(total=steps, desc="md"); bar.update(); bar.close()
"""

from __future__ import annotations

import sys
from typing import IO, Iterable, Optional

LOG_INTERVAL = 30.0  # seconds between two lines in a log


def is_terminal(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class _Lines:
    """A stream for tqdm that writes each status as its own line (tqdm redraws with carriage returns,
    which a log shows as one endless line or, per viewer, as thousands)."""

    def __init__(self, stream: IO):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Optional[Iterable] = None, file: Optional[IO] = None, **kwargs):
    """``tqdm(iterable, **kwargs)`` on a terminal; elsewhere a tqdm that prints a line at most every
    LOG_INTERVAL seconds (and one at the end), whatever the caller updates (``set_postfix`` and
    ``set_description`` wait for the clock too). ``disable=True`` silences it either way."""
    from tqdm.auto import tqdm

    stream = file if file is not None else sys.stderr
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)

    class LogBar(tqdm):
        def set_postfix(self, ordered_dict=None, refresh=False, **values):
            super().set_postfix(ordered_dict, refresh=False, **values)

        def set_description(self, desc=None, refresh=False):
            super().set_description(desc, refresh=False)

    kwargs.setdefault("mininterval", LOG_INTERVAL)
    kwargs.setdefault("maxinterval", LOG_INTERVAL)
    kwargs.setdefault("miniters", 1)  # no dynamic miniters: the clock alone decides
    kwargs.setdefault("ascii", True)
    return LogBar(iterable, file=_Lines(stream), dynamic_ncols=False, **kwargs)
