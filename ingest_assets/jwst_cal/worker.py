"""Ingest a range of days in a worker process, ahead of a caller that records each day as it arrives.

A Dagster step spends about a fifth of a range's time recording its days' events; meanwhile the worker goes on
ingesting on the machine's other core. The worker commits a group of days only once the caller has taken every day
sent before (`ingest_range`'s `before_commit`), so at most the group being taken is committed and not yet recorded,
as when the caller ingests the days itself. A caller that stops taking days (it fails or is interrupted) stops the
worker, whose open transaction is then lost; a caller that dies leaves the worker to stop at its next commit,
rolling that group back.

Protocol: the caller writes the pickled `RangeRequest` to the worker's standard input, then one byte for each item
it has taken; the worker writes pickled items to the pipe whose descriptor is its argument: each `StagedDay` and
`CommittedDay` as `ingest_range` yields it, then `None` at the end, or the exception that ended the range.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from typing import BinaryIO

from .ranges import CommittedDay, RangeRequest, StagedDay, ingest_range


class WorkerError(RuntimeError):
    """The worker process ended without finishing its range, or failed with an error it could not pass on."""


def ingest_in_worker(request: RangeRequest) -> Iterator[StagedDay | CommittedDay]:
    """`ingest_range(request)` run in a worker process; raises the exception that ended the range there."""
    reader, writer = os.pipe()
    worker = subprocess.Popen([sys.executable, "-m", __name__, str(writer)], stdin=subprocess.PIPE,
                              pass_fds=(writer,))
    os.close(writer)
    finished = False  # the worker sent its last item, or is gone
    try:
        with os.fdopen(reader, "rb") as items:
            pickle.dump(request, worker.stdin)
            worker.stdin.flush()
            while True:
                try:
                    item = pickle.load(items)
                except EOFError:
                    finished = True
                    raise WorkerError(f"the ingest's worker process {_ended(worker.wait())} before the end of its "
                                      "range") from None
                if item is None or isinstance(item, BaseException):
                    finished = True
                    if item is None:
                        return
                    raise item
                yield item
                _acknowledge(worker.stdin)
    finally:
        if not finished:  # the caller stopped taking days
            worker.terminate()
        try:
            worker.stdin.close()
        except BrokenPipeError:
            pass
        worker.wait()


def _ended(status: int) -> str:
    return f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"


def _acknowledge(taken: BinaryIO) -> None:
    try:
        taken.write(b".")
        taken.flush()
    except BrokenPipeError:
        pass  # the worker ended: its next item, or the end of its items, says why


def serve(channel: int) -> None:
    """The worker: ingest the range read from standard input, writing its items to descriptor `channel`."""
    taken_in = sys.stdin.buffer
    request: RangeRequest = pickle.load(taken_in)
    sent = taken = 0

    def caller_took_all() -> None:
        nonlocal taken
        if taken < sent:
            taken += len(taken_in.read(sent - taken))
        if taken < sent:
            raise WorkerError("the caller stopped taking the range's days")

    with os.fdopen(channel, "wb") as items:
        try:
            for item in ingest_range(request, before_commit=caller_took_all):
                pickle.dump(item, items)
                items.flush()
                sent += 1
            end = None
        except Exception as err:  # passed on to the caller, which raises it
            traceback.print_exc()
            end = err if _passes(err) else WorkerError(f"{type(err).__name__}: {err}")
        try:
            pickle.dump(end, items)
            items.flush()
        except BrokenPipeError:
            pass  # the caller is gone


def _passes(err: Exception) -> bool:
    """Whether the caller can raise `err` as it is (it pickles into an equal exception)."""
    try:
        copy = pickle.loads(pickle.dumps(err))
    except Exception:
        return False
    return type(copy) is type(err) and str(copy) == str(err)


if __name__ == "__main__":
    # Imported under its package name, so that what it pickles names its real module rather than __main__.
    from ingest_assets.jwst_cal.worker import serve as serve_range
    serve_range(int(sys.argv[1]))
