"""The one error type that bad input raises, naming the file, the frame and the key at fault."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or unreadable input.

    Args:
        message: what is wrong.
        source: the file (or directory) being read.
        frame: index of the frame (structure) within that source, if known.
        key: the field at fault (``"forces"``, ``"cell"``, ...), if known.
    """

    def __init__(self, message: str, source=None, frame=None, key=None):
        self.reason = message
        self.source = None if source is None else str(source)
        self.frame = frame
        self.key = key
        where = []
        if self.source is not None:
            where.append(f"file {self.source}")
        if frame is not None:
            where.append(f"frame {frame}")
        if key is not None:
            where.append(f"key '{key}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def at(self, source=None, frame=None) -> "DataError":
        """The same error with the location filled in where it was missing."""
        return DataError(
            self.reason,
            self.source if self.source is not None else source,
            self.frame if self.frame is not None else frame,
            self.key,
        )
