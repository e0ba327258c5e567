"""Progress bars in logs: at most one line every 30 s where the output is not a terminal."""

import io
import re

from mlip.progress import LOG_INTERVAL, progress


def segments(text: str):
    return [s for s in re.split(r"[\r\n]", text) if s.strip()]


def test_a_log_gets_a_first_and_a_last_line_for_a_fast_loop():
    log = io.StringIO()
    for _ in progress(range(100000), file=log, desc="reading", unit="frame"):
        pass
    lines = segments(log.getvalue())
    assert len(lines) <= 2 and "100000/100000" in lines[-1], lines
    assert "\r" not in log.getvalue()  # whole lines, no carriage-return redraws
    assert LOG_INTERVAL == 30.0


def test_a_log_gets_a_line_per_interval(monkeypatch):
    clock = iter(range(0, 10**6, 7))  # each call of the clock: 7 s later
    monkeypatch.setattr("tqdm.std.time", lambda: next(clock))
    log = io.StringIO()
    bar = progress(total=40, file=log, desc="md", unit="step")
    for _ in range(40):
        bar.update()
    bar.close()
    lines = segments(log.getvalue())
    # about 40 x 7 s of work: one line per 30 s at most, plus the first and the last
    assert 3 <= len(lines) <= 40 * 7 // 30 + 2, lines


def test_postfix_updates_wait_for_the_clock_too():
    """MD and relaxation set a postfix (T, E) every few steps: in a log that is no reason to print."""
    log = io.StringIO()
    bar = progress(total=5000, file=log, desc="md", unit="step")
    for step in range(5000):
        bar.update()
        if step % 50 == 0:
            bar.set_postfix(T=f"{step} K")
            bar.set_description(f"md {step}")
    bar.close()
    assert len(segments(log.getvalue())) <= 2, segments(log.getvalue())


def test_disabled_says_nothing():
    log = io.StringIO()
    for _ in progress(range(10), file=log, disable=True):
        pass
    assert log.getvalue() == ""
