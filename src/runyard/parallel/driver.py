"""`python -m runyard.parallel.driver`: the master role of a ParallelRunStep job (one node).

It reads the job file (RUNYARD_PARALLEL_JOB), cuts the inputs into mini-batches, skips those the
checkpoint holds, and hands the rest to `process_count_per_node` worker processes one at a time (pull:
an idle worker gets the next one, plus one queued behind it so no worker waits for a round trip). It
kills and replaces a worker whose run() passes run_invocation_timeout, retries failed tries up to
run_max_try, keeps the error budget (accounting.py), and assembles the append_row file at the end.

The loop sleeps in multiprocessing.connection.wait on the workers' connections, the listener and a
signal pipe: it wakes for a message, a deadline (timeout, progress) or SIGTERM, never polls.
Exit 0 = Completed; 1 = Failed; 2 = canceled. The last line printed says which, and why.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal

from runyard import config
from runyard.engine.graph_parallel import ParallelSettings
from runyard.errors import RunyardError
from runyard.parallel import agents
from runyard.parallel.accounting import Accounting
from runyard.parallel.agents import Agent, Listener
from runyard.parallel.checkpoint import Checkpoint, DoneRecord
from runyard.parallel.job import ENV_JOB, ParallelJob
from runyard.parallel.joblogs import JobLogs, MiniBatchRecord, agent_name
from runyard.parallel.partition import MiniBatch, plan_mini_batches
from runyard.parallel.perf import PerfSampler
from runyard.parallel.progress import MAX_FAILURES, Failure, ProgressSnapshot

State = Literal["running", "completed", "failed"]
PREFETCH = 1  # mini-batches queued in a worker behind the running one
PROGRESS_EVERY = 1.0
METRICS_EVERY = 5.0
EXIT_FAILED, EXIT_CANCELED = 1, 2


class Driver:
    def __init__(self, job: ParallelJob, cwd: Path) -> None:
        self.job, self.cwd = job, cwd
        self.settings: ParallelSettings = job.parallel_settings
        self.logs = JobLogs(cwd / "logs", job.node, self.settings.logging_level)
        self.checkpoint = Checkpoint(job.checkpoint)
        self.agents: dict[str, Agent] = {}
        self.next_agent = 1
        self.pending: deque[tuple[MiniBatch, int]] = deque()
        self.failures: list[Failure] = []
        self.fatal: str | None = None  # fail fast: init / import error
        self.write_error: str | None = None  # the checkpoint or the output cannot be written
        self.stop_reason: str | None = None  # budget exceeded
        self.canceled = False
        self.started = time.time()
        self.last_progress = self.last_metrics = 0.0
        self.metrics_run: Any = None
        self.records: dict[int, DoneRecord] = {}
        self.acc = Accounting(self.settings, 0, 0)

    # -- the job ---------------------------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        self.logs.master(f"ParallelRunStep {self.job.step!r} starting: {json.dumps(s.to_json())}")
        if s.node_count != 1:  # the scheduler starts it so only on a named compute target
            self.logs.master(
                f"node_count={s.node_count}: runyard runs one node on this machine "
                f"(process_count_per_node={s.process_count_per_node} workers); several nodes need the Ray "
                "compute target.",
                "WARNING",
            )
        with self.listening():
            for _ in range(s.process_count_per_node):
                self.spawn()  # the workers import the entry script and run init() while the inputs are planned
            problem = self.prepare()
            if problem is None and self.pending and self.stop_reason is None:
                with PerfSampler(self.cwd / "logs" / "perf" / self.job.node, self.worker_pids):
                    self.serve()
        return self.finish_early(problem) if problem else self.finish()

    def prepare(self) -> str | None:
        """Plan the mini-batches and take those the checkpoint lacks; why the job cannot run, or None."""
        s = self.settings
        try:
            plan = plan_mini_batches(self.job.inputs, s, self.cwd / ".parallel-cache")
        except (RunyardError, OSError) as exc:
            return str(exc)
        for note in plan.notes:
            self.logs.master(note)
        self.acc = Accounting(s, len(plan.mini_batches), plan.total_items)
        for problem in plan.problems:
            self.acc.planning_problems(problem.items)
            self.logs.user_error(
                "master", None, f"input {problem.input!r}: {problem.item}: {problem.message}", ""
            )
        try:
            self.logs.master(self.checkpoint.open(plan.key()))
        except RunyardError as exc:
            return str(exc)
        self.records = self.checkpoint.completed(len(plan.mini_batches))  # ids of this plan only
        for mb in plan.mini_batches:
            rec = self.records.get(mb.id)
            if rec is None:
                self.pending.append((mb, 1))
            else:
                self.acc.complete(mb.items, rec.succeeded, resumed=True)
        self.logs.master(
            f"{len(plan.mini_batches)} mini-batches ({plan.total_items} items), {self.acc.resumed} already "
            f"completed (resumed), {len(self.pending)} to run on {s.process_count_per_node} workers"
        )
        self.stop_reason = self.acc.exceeded(all_scheduled=not self.pending)
        return None

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """The workers' listener and the signal pipe for the job's duration; the workers stopped after."""
        self.listener = Listener(secrets.token_bytes(32))
        self.wake, wake_w = socket.socketpair()
        wake_w.setblocking(False)
        previous_fd = signal.set_wakeup_fd(wake_w.fileno())
        previous = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            agents.stop_all(self.agents)
            self.listener.close()
            self.wake.close()
            wake_w.close()

    def serve(self) -> None:
        """The loop: hand out work, wait for a message, a deadline or a signal; until done or stopped."""
        while not (self.canceled or self.fatal or self.stop_reason or self.write_error):
            self.dispatch()
            if not self.pending and not any(a.queue for a in self.agents.values()):
                break
            self.tick()
            for obj in wait(self.waitables(), timeout=self.next_deadline()):
                if obj is self.wake:
                    self.wake.recv(4096)
                elif obj is self.listener.server:
                    self.listener.accept()  # the handshake runs in a thread, with a deadline
                elif obj is self.listener.ready:
                    for note in self.listener.take(self.agents):
                        self.logs.master(note, "WARNING")
                else:
                    self.receive(obj)  # type: ignore[arg-type]
            self.check_timeouts_and_deaths()

    def on_signal(self, signum: int, frame: Any) -> None:
        self.canceled = True

    # -- workers ---------------------------------------------------------------------------------
    def spawn(self) -> None:
        name = agent_name(self.next_agent)
        self.next_agent += 1
        paths, s = self.logs.agent_paths(name), self.settings
        results = self.checkpoint.results if s.output_action == "append_row" else None
        plumbing = agents.worker_plumbing(
            name,
            self.listener.address,
            self.listener.authkey,
            (self.cwd / self.job.entry_script).resolve(),
            self.job.arguments,
            results,
            s.logging_level,
            preload=s.kind == "tabular",
        )
        env = agents.worker_environment(
            name, paths, s.logging_level, self.job.output or str(self.cwd), self.cwd, s.environment_variables
        )
        for side in self.job.side_inputs:
            if side.path:
                env.setdefault(f"AZUREML_DATAREFERENCE_{side.name}", side.path)
        agent = self.agents[name] = agents.spawn(name, paths, env, self.cwd, plumbing)
        self.logs.master(f"{name} started (pid {agent.proc.pid})")

    def waitables(self) -> list[Any]:
        listener = self.listener
        return [self.wake, listener.server, listener.ready, *(a.conn for a in self.agents.values() if a.conn)]

    def worker_pids(self) -> list[int]:
        return [a.proc.pid for a in list(self.agents.values())]

    def dispatch(self) -> None:
        now = time.monotonic()
        for agent in self.agents.values():
            if not agent.ready or agent.conn is None:
                continue
            while self.pending and len(agent.queue) <= PREFETCH:
                mb, attempt = self.pending.popleft()
                if not agent.queue:
                    agent.head_started = now
                agent.queue.append((mb, attempt))
                agent.conn.send(("run", mb.to_json(), attempt))

    def receive(self, conn: Connection) -> None:
        agent = next((a for a in self.agents.values() if a.conn is conn), None)
        if agent is None:
            return
        try:
            message = conn.recv()
        except (EOFError, OSError):
            self.lost(agent, None)
            return
        shape = {"ready": 2, "init_failed": 4, "done": 7, "failed": 6}
        kind = message[0] if isinstance(message, tuple) and message else None
        if not isinstance(kind, str) or len(message) != shape.get(kind):
            self.logs.master(
                f"{agent.name} sent a message runyard does not know: {message!r:.200}", "WARNING"
            )
            return
        if kind == "ready":
            agent.ready = True
            self.logs.master(f"{agent.name} ready: init() took {_seconds(message[1]):.2f} s")
        elif kind == "init_failed":
            if self.fatal is None:
                self.fatal = f"{message[2]} (in {agent.name})"
                self.logs.user_error(agent.name, None, str(message[2]), str(message[3]))
        else:
            if not agent.queue or (agent.queue[0][0].id, agent.queue[0][1]) != (message[1], message[2]):
                self.logs.master(
                    f"{agent.name} reported mini-batch {message[1]!r:.40} it was not running", "WARNING"
                )
                return
            mb, attempt = agent.queue.popleft()
            started = agent.head_started
            agent.head_started = time.monotonic()
            if kind == "done":  # message[4], the worker's results file name, is not used: see completed()
                self.completed(agent, mb, attempt, message[3], _seconds(message[5]), _seconds(message[6]))
            else:
                summary, tb = str(message[3]), str(message[4])
                self.try_failed(agent, mb, attempt, summary, tb, time.monotonic() - started)

    def completed(
        self, agent: Agent, mb: MiniBatch, attempt: int, returned: Any, seconds: float, run_seconds: float
    ) -> None:
        """A try returned. The driver names its results file itself (a worker could name any file it
        wants copied into the output) and checks it is a regular file in results/ (lstat)."""
        if isinstance(returned, bool) or not isinstance(returned, int) or returned < 0:
            why = f"{agent.name} reported {returned!r:.40} results; the count must be a whole number >= 0"
            self.try_failed(agent, mb, attempt, why, "", seconds)
            return
        file = None
        if self.settings.output_action == "append_row":
            file = self.checkpoint.result_name(mb.id, attempt)
            if not self.checkpoint.has_result(file):
                why = (
                    f"{agent.name} reported mini-batch {mb.id} done, but its results file "
                    f"{self.checkpoint.results / file} is missing or not a regular file"
                )
                self.try_failed(agent, mb, attempt, why, "", seconds)
                return
        rec = DoneRecord(mb.id, mb.items, min(returned, mb.items), file)
        try:
            self.checkpoint.record_done(rec)
        except OSError as exc:
            where = self.checkpoint.root / "done.jsonl"
            self.write_error = f"the checkpoint file {where} cannot be written: {exc.strerror or exc}"
            return
        self.records[mb.id] = rec
        lost = self.acc.complete(mb.items, returned)
        self.record(mb, agent, attempt, mb.items - lost, "RUN_DONE", seconds, run_seconds)
        self.check_budget()

    def try_failed(
        self, agent: Agent, mb: MiniBatch, attempt: int, summary: str, tb: str, seconds: float
    ) -> None:
        self.logs.user_error(
            agent.name, mb.id, f"try {attempt} of {self.settings.run_max_try}: {summary}", tb
        )
        if attempt < self.settings.run_max_try:
            self.pending.appendleft((mb, attempt + 1))
            return
        self.acc.fail(mb.items)
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(
                Failure(
                    mini_batch=mb.id, input=mb.input, message=summary, log=self.logs.error_log(agent.name)
                )
            )
        self.record(mb, agent, attempt, 0, "RUN_FAILED", seconds, 0.0)
        self.check_budget()

    def record(
        self, mb: MiniBatch, agent: Agent, tries: int, ok: int, status: str, seconds: float, run_s: float
    ) -> None:
        started = time.time() - seconds
        rec = MiniBatchRecord(
            mb.id, mb.input, mb.items, ok, mb.items - ok, tries, agent.name, status, started, seconds, run_s
        )
        self.logs.mini_batch(rec)

    def check_budget(self) -> None:
        scheduled = not self.pending
        self.stop_reason = self.stop_reason or self.acc.exceeded(all_scheduled=scheduled)

    def lost(self, agent: Agent, why: str | None) -> None:
        """A worker ended (died, or was killed for a timeout): fail its running try, requeue the rest,
        start a replacement while work remains."""
        agents.kill_tree(agent.proc)
        why = why or f"{agent.name} exited (code {agent.proc.returncode})"
        if agent.conn is not None:
            agent.conn.close()
        del self.agents[agent.name]
        if self.canceled:
            return  # a cancel stops the workers too: their tries are not failures
        self.logs.master(why, "WARNING")
        if not agent.ready and self.fatal is None:
            self.fatal = (
                f"{why} before init() finished; see logs/user/stderr/{self.job.node}/{agent.name}.stderr.txt"
            )
            self.logs.user_error(agent.name, None, self.fatal, "")
            return
        if agent.queue:
            (mb, attempt), *rest = agent.queue
            self.pending.extendleft(reversed(rest))
            self.try_failed(agent, mb, attempt, why, "", time.monotonic() - agent.head_started)
        if self.pending and not (self.fatal or self.stop_reason or self.canceled):
            self.spawn()

    def check_timeouts_and_deaths(self) -> None:
        now = time.monotonic()
        for agent in list(self.agents.values()):
            if (
                agent.queue
                and agent.ready
                and now - agent.head_started > self.settings.run_invocation_timeout
            ):
                mb = agent.queue[0][0]
                self.lost(
                    agent,
                    f"{agent.name}: run() on mini-batch {mb.id} took longer than "
                    f"run_invocation_timeout ({self.settings.run_invocation_timeout:g} s); the "
                    "worker was stopped and replaced",
                )
            elif not agent.ready and now - agent.started > self.init_limit() and self.fatal is None:
                self.fatal = (
                    f"{agent.name}: the entry script's import and init() did not finish in "
                    f"{self.init_limit():g} s (3 x run_invocation_timeout + 30 s, as in v1)"
                )
                self.logs.user_error(agent.name, None, self.fatal, "")
            elif agent.conn is None and agent.proc.poll() is not None:
                self.lost(agent, f"{agent.name} exited (code {agent.proc.returncode}) before connecting")

    def init_limit(self) -> float:
        return 3 * self.settings.run_invocation_timeout + 30

    def next_deadline(self) -> float:
        now, deadline = time.monotonic(), PROGRESS_EVERY
        for agent in self.agents.values():
            if agent.queue and agent.ready:
                deadline = min(deadline, agent.head_started + self.settings.run_invocation_timeout - now)
            elif agent.conn is None:
                deadline = min(deadline, 0.2)  # not connected yet: watch for an early exit
        return max(deadline, 0.01)

    # -- progress and the end --------------------------------------------------------------------
    def snapshot(self, state: State = "running") -> ProgressSnapshot:
        scheduled = self.acc.total_mini_batches - len(self.pending)
        return self.acc.snapshot(
            self.job.step, self.started, state, scheduled, len(self.agents), self.failures
        )

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last_progress >= PROGRESS_EVERY:
            self.last_progress = now
            if not final:
                self.logs.progress(self.snapshot())
        if final or now - self.last_metrics >= METRICS_EVERY:
            self.last_metrics = now
            self.log_metrics()

    def log_metrics(self) -> None:
        """Run metrics for the step run (only inside a submitted run: outside one there is none to log to)."""
        if not os.environ.get(config.ENV_RUN_ID):
            return
        try:
            if self.metrics_run is None:
                from runyard.core.run import Run

                self.metrics_run = Run.get_context()
            for name, value in self.acc.metrics(self.snapshot().items_per_second).items():
                self.metrics_run.log(name, value)
        except Exception as exc:
            self.logs.master(f"run metrics not logged: {exc}", "WARNING")

    def finish_early(self, reason: str) -> int:
        self.logs.master(reason, "ERROR")
        return self.end("failed", f"ParallelRunStep failed: {reason}", EXIT_FAILED)

    def finish(self) -> int:
        self.tick(final=True)
        if not (self.canceled or self.fatal or self.write_error):  # allowed_failed_percent: all scheduled
            self.stop_reason = self.stop_reason or self.acc.exceeded(all_scheduled=True)
        first = f" First failure: {self.failures[0].message}." if self.failures else ""
        if self.canceled:
            return self.end(
                "failed",
                "ParallelRunStep canceled: the job was stopped (SIGTERM); "
                f"{self.acc.completed} completed mini-batches are kept in the checkpoint and a "
                "rerun continues from there.",
                EXIT_CANCELED,
            )
        if self.fatal:
            return self.end(
                "failed", f"ParallelRunStep failed: {self.fatal}. See logs/user/error.txt.", EXIT_FAILED
            )
        if self.stop_reason:
            return self.end(
                "failed",
                f"ParallelRunStep failed: {self.stop_reason}.{first} See logs/user/error.txt.",
                EXIT_FAILED,
            )
        if self.write_error:
            return self.end("failed", f"ParallelRunStep failed: {self.write_error}", EXIT_FAILED)
        where = ""
        if self.settings.output_action == "append_row" and self.job.output:
            target = Path(self.job.output) / self.settings.append_row_file_name
            try:
                self.checkpoint.assemble(self.records.values(), target)
            except (OSError, RunyardError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                return self.end(
                    "failed",
                    f"ParallelRunStep failed: the output file {target} cannot be written: {reason}. The "
                    "completed mini-batches are kept in the checkpoint: a rerun assembles it again.",
                    EXIT_FAILED,
                )
            where = f" Output: {target}."
        acc = self.acc
        return self.end(
            "completed",
            f"ParallelRunStep completed: {acc.completed} of {acc.total_mini_batches} "
            f"mini-batches ({acc.failed} failed), {acc.items_succeeded} items succeeded, "
            f"{acc.items_failed} failed.{where}",
            0,
        )

    def end(self, state: State, line: str, code: int) -> int:
        outcome = "Completed" if code == 0 else ("Canceled" if code == EXIT_CANCELED else "Failed")
        self.logs.result(self.snapshot(state), outcome, line)
        self.logs.master(line, "INFO" if code == 0 else "ERROR")
        self.logs.close()
        self.checkpoint.close()
        print(line, file=sys.stdout if code == 0 else sys.stderr, flush=True)
        return code


def _seconds(value: Any) -> float:
    """A duration a worker reported (untrusted: anything else counts as 0)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and value >= 0 else 0.0


def main() -> int:
    path = os.environ.get(ENV_JOB)
    if not path:
        print(
            f"ParallelRunStep failed: {ENV_JOB} is not set; the scheduler starts this driver.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        job = ParallelJob.load(path)
    except RunyardError as exc:
        print(f"ParallelRunStep failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return Driver(job, Path.cwd()).run()


if __name__ == "__main__":
    sys.exit(main())
