"""Batching in front of one decoding thread.

Requests wait in one queue; the decoding thread takes the oldest and gathers more with the
same batch key (same model and decoding options; a request that draws random numbers has a
key of its own) until `max_batch_size` rows, or `batch_wait` passes without a new one, or
`GATHER` x `batch_wait` after the oldest arrived (while requests the server has received are
still being checked, it waits for them too); then it decodes them together. rcd's decoding
of left-padded prompts is batch-invariant, so an answer does not depend on its batch. A full
queue refuses at once (`QueueFull`), a cancelled request leaves the queue, and a batch whose
every request was cancelled stops at its next step.
Results and live steps go back to each request's event loop through its `Ticket`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..decode import GenerationOutput, TraceStep
from .backend import LocalBackend
from .metrics import Metrics
from .options import Options
from .steps import BatchCanvas

GATHER = 10  # a batch waits at most this many batch_waits for more requests
ARRIVAL = "rcd.arrival"  # ASGI scope key: the request counts in `Scheduler.arriving`


class QueueFull(Exception):
    """The queue holds `max_queue` waiting requests."""


class Cancelled(Exception):
    """Every request of a batch went away: the decode stops."""


@dataclass(frozen=True)
class Job:
    model: str
    prompts: list[str]  # one per row
    options: Options
    seed: int | None
    key: Hashable  # requests of equal keys may share a batch
    prompt_tokens: int  # of its distinct prompts, for usage


@dataclass
class RowResult:
    ids: list[int]  # the row's generated ids (gen_length)
    forward_passes: int  # of the decoded model, this row's
    reference_passes: int
    decoded_tokens: int


@dataclass(eq=False)
class Ticket:
    """One request in the scheduler: its events arrive on `events` as ("step", row, RowStep),
    ("done", [RowResult], None) or ("error", message, None). steps: None (no step events),
    "blocks" (after a step that completes the row's block) or "all"."""

    job: Job
    loop: asyncio.AbstractEventLoop
    steps: str | None = None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    finished: bool = False
    arrived: float = field(default_factory=time.monotonic)

    def post(self, *event) -> None:
        if not self.cancelled:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    async def next_event(self) -> tuple:
        """The next event; `finished` turns true with the last ("done" or "error")."""
        event = await self.events.get()
        self.finished = event[0] != "step"
        return event

    async def result(self) -> list[RowResult]:
        """Wait for the rows (steps, if any, are skipped); RuntimeError on a decoding failure."""
        while True:
            kind, value, _ = await self.next_event()
            if kind == "done":
                return value
            if kind == "error":
                raise RuntimeError(value)


class Scheduler:
    def __init__(
        self,
        backend: LocalBackend,
        metrics: Metrics,
        *,
        max_batch_size: int,
        max_queue: int,
        batch_wait: float,
    ):
        self.backend, self.metrics = backend, metrics
        self.max_batch_size, self.max_queue, self.batch_wait = max_batch_size, max_queue, batch_wait
        self.pending: list[Ticket] = []
        self.running: list[Ticket] = []
        self.condition = threading.Condition()
        self.stopping = False
        self.arriving, self.last_arrival = 0, 0.0  # requests received, not yet submitted or refused
        self.thread = threading.Thread(target=self._work, name="rcd-decode", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Decode what is queued, then end the thread."""
        with self.condition:
            self.stopping = True
            self.condition.notify_all()
        self.thread.join()

    def arrived(self, scope: dict) -> None:
        """A decoding request reached the server: a gathering batch waits for it until `checked`."""
        with self.condition:
            scope[ARRIVAL] = True
            self.arriving += 1
            self.last_arrival = time.monotonic()

    def checked(self, scope: dict) -> None:
        """The request was submitted or refused (once per request; later calls do nothing)."""
        with self.condition:
            if scope.pop(ARRIVAL, False):
                self.arriving -= 1
                self.condition.notify_all()

    def submit(self, job: Job, steps: str | None = None) -> Ticket:
        if len(job.prompts) > self.max_batch_size:
            raise ValueError(
                f"the request has {len(job.prompts)} rows (prompts x n); this server decodes at most "
                f"{self.max_batch_size} together: send fewer prompts or a smaller n"
            )
        ticket = Ticket(job, asyncio.get_running_loop(), steps)
        with self.condition:
            if len(self.pending) >= self.max_queue:
                raise QueueFull
            self.pending.append(ticket)
            self.metrics.queue_depth.set(len(self.pending))
            self.condition.notify_all()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """The client went away: leave the queue (or let the batch stop once all its requests left)."""
        with self.condition:
            ticket.cancelled = True
            if ticket in self.pending:
                self.pending.remove(ticket)
                self.metrics.queue_depth.set(len(self.pending))
                self.metrics.cancelled.inc()

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._decode(batch)

    def _next_batch(self) -> list[Ticket] | None:
        with self.condition:
            while not self.pending:
                if self.stopping:
                    return None
                self.condition.wait()
            first = self.pending[0]
            while self.pending and first in self.pending:
                same = self._same(first)
                # gather while requests of this key keep coming (a burst's stragglers), at most GATHER waits
                # (and while requests the server has received are still being checked)
                last = max(same[-1].arrived, self.last_arrival if self.arriving else 0.0)
                deadline = min(last + self.batch_wait, first.arrived + GATHER * self.batch_wait)
                left = deadline - time.monotonic()
                if left <= 0 or self._rows(same) >= self.max_batch_size:
                    break
                self.condition.wait(left)
            if not self.pending:
                return []
            first = self.pending[0]  # the oldest still waiting (a cancelled one has left)
            batch, rows = [], 0
            for ticket in self._same(first):
                if rows + len(ticket.job.prompts) > self.max_batch_size:
                    break
                batch.append(ticket)
                rows += len(ticket.job.prompts)
            for ticket in batch:
                self.pending.remove(ticket)
            self.running = batch
            self.metrics.queue_depth.set(len(self.pending))
            self.metrics.in_flight.set(len(batch))
            return batch

    def _same(self, first: Ticket) -> list[Ticket]:
        return [t for t in self.pending if t.job.key == first.job.key]

    @staticmethod
    def _rows(tickets: list[Ticket]) -> int:
        return sum(len(t.job.prompts) for t in tickets)

    def _decode(self, batch: list[Ticket]) -> None:
        if not batch:
            return
        job = batch[0].job
        prompts = [p for t in batch for p in t.job.prompts]
        starts = list(itertools.accumulate([0] + [len(t.job.prompts) for t in batch]))
        canvas = BatchCanvas(len(prompts), job.options.decode.gen_length)
        watched = any(t.steps is not None for t in batch)

        def on_step(step: TraceStep) -> None:
            if all(t.cancelled for t in batch):
                raise Cancelled
            if not watched:
                return
            canvas.update(step)
            for ticket, start in zip(batch, starts):
                if ticket.steps is None or ticket.cancelled:
                    continue
                for i in range(len(ticket.job.prompts)):
                    if ticket.steps == "all" or canvas.block_done(start + i):
                        ticket.post("step", i, canvas.row(start + i))

        self.metrics.batch_size.observe(len(prompts))
        started = time.perf_counter()
        try:
            out = self.backend.run(
                job.model, prompts, job.options.decode, job.options.residual, job.seed, on_step
            )
        except Cancelled:
            self.metrics.aborted_batches.inc()
            self.metrics.cancelled.inc(len(batch))
        except Exception as err:  # noqa: BLE001 (a failure of this batch is its requests' error, not the server's end)
            for ticket in batch:
                ticket.post("error", f"decoding failed: {type(err).__name__}: {err}", None)
        else:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self.metrics.forward_passes.labels(job.model, "model").inc(out.nfe)
            self.metrics.forward_passes.labels(job.model, "reference").inc(out.reference_nfe)
            rows = _rows(out)
            for ticket, start in zip(batch, starts):
                ticket.post("done", rows[start : start + len(ticket.job.prompts)], None)
        finally:
            with self.condition:
                self.running = []
                self.metrics.in_flight.set(0)


def _rows(out: GenerationOutput) -> list[RowResult]:
    passes, reference = out.row_forward_passes.tolist(), out.row_reference_passes.tolist()
    return [
        RowResult(ids, passes[i] - reference[i], reference[i], int(out.generated_tokens[i]))
        for i, ids in enumerate(out.generated.tolist())
    ]
