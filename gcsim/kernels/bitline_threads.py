"""The bank read split over threads: the caller and n - 1 helper threads take its units
(one K/V head x query head each) one at a time, and the caller never waits long for a
helper.

Why not numba's parallel runtime (prange over fixed unit ranges, used until 2026-11-26):
its join waits for every thread of the team. On a machine whose second core is busy, or
whose second vCPU the hypervisor runs late, a thread starts its range a scheduler slice
late; a GPT-2 replay with 2 threads then ran at 22-102 steps/s where 1 thread gives ~290-360
(docs/performance.md). Here a late helper only helps less:
- units are handed out one at a time (a ticket: job << 32 | next unit, taken by
  compare-and-exchange, gcsim/kernels/atomics.py), so the caller takes what nobody took;
- a helper computes into its own buffers and copies into the outputs only if the unit is
  still its own (state CLAIMED -> COMMITTING); when the caller has nothing left to hand
  out and has waited PATIENCE x its fastest unit, it takes back every unit not committing
  (OPEN or CLAIMED -> TAKEN) and computes it itself. So a read costs about one thread's
  time at most plus a few units, however the helpers are scheduled;
- on a busy machine a polling helper still takes a core's time from the caller: the team
  stands down for a while when helpers do not help (StandDown).
Each unit is computed whole by one thread with the serial kernel's code (bitline._unit):
results do not depend on the number of threads or on who computed what.

Helpers run compiled code (`_serve`) that polls the mailbox (an int64 array), yielding the
core between polls once 0.3 ms have passed since its last job (SPIN_S: the next read of a
run comes sooner; sched_yield: a busy machine's other work goes first), and sleeps on a
Python Event after 50 ms without work (IDLE_S). A helper reads a job's arrays from
their addresses; the caller keeps the arrays of a job alive while a helper may still be in
it (`_Team.held`), so a helper that was taken over never reads freed memory.
"""
from __future__ import annotations

import atexit
import os
import threading
import time

import numba
import numpy as np

from . import atomics, bitline

bitline.compiled()   # bitline._unit and _slot_weights are compiled functions from here on

MAX_HELPERS = 8
MAX_UNITS = 1 << 12
# mailbox: int64 slots (the ticket and the done count on cache lines of their own)
TICKET, DONE, STOP, TAKEN_BACK, HELPED = 0, 8, 16, 17, 18   # (+ counts: units taken back, by helpers)
SLEEP, IN_JOB = 24, 32      # + helper: asleep (or going to); the job it may still read (0: none)
(F_UNITS, F_F64, F_Q, F_KC, F_VC, F_KCOEF, F_VALIDF, F_COEFFS, F_S, F_PHI, F_A, F_KV, F_G, F_D, F_M, F_ASIZE,
 F_NCOEF) = range(40, 57)   # the job's fields
MAIL_SLOTS = 64
MASK = (1 << 32) - 1
OPEN, CLAIMED, COMMITTING, TAKEN = 0, 1, 2, 3   # a unit's state (low 2 bits; job << 2 above)
SPIN_S = 0.0003   # after a job, a helper polls without yielding this long (a GPT-2 layer step's glue: ~0.1 ms)
IDLE_S = 0.05   # without work this long, a helper sleeps: not within a run (waking needs the GIL, which a
                # helper descheduled while holding it on a busy machine would keep from the caller)
PATIENCE = 3                # x the caller's fastest unit: how long it waits for a helper's unit
# When helpers do not help, the team pauses (the caller reads alone; helpers fall asleep):
# on a busy machine a polling helper only takes a core's time from the caller. It pauses after
# STRIKES consecutive reads with a take-back, or when the helpers' share of the units over the
# last reads (an average over ~SHARE_READS) is under half of their due share (n - 1) / n.
# PAUSE_READS (~0.5 s of GPT-2 reads) lets the helpers fall asleep (IDLE_S).
STRIKES, SHARE_READS, PAUSE_READS = 3, 128, 2048


@numba.njit(cache=True, nogil=True)
def _claim(mail, gen):
    """The next unit of job gen, or -1 when all are handed out (or the job is over)."""
    while True:
        t = atomics.load(mail, TICKET)
        if (t >> 32) != gen or (t & MASK) >= mail[F_UNITS]:
            return -1
        if atomics.compare_exchange(mail, TICKET, t, t + 1):
            return t & MASK


@numba.njit(cache=True, nogil=True)
def _compute(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, u, S_row, phi_row, A_unit):
    f = q.dtype.type
    G = q.shape[1]
    bitline._unit(q, kc, vc, f(fmail[0]), f(fmail[1]), kcoef, validf, coeffs, f(fmail[2]), array_size,
                  u // G, u % G, S_row, phi_row, A_unit)


@numba.njit(cache=True, nogil=True)
def _compute_out(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, u, S, phi, A):
    """_compute of unit u straight into the read's outputs (the caller's units)."""
    G = q.shape[1]
    _compute(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, u, S[u // G, u % G], phi[u // G, u % G],
             A[u // G, u % G])


@numba.njit(cache=True, nogil=True)
def team_read(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A, mail, fmail, state,
              helpers):
    """The caller's side of a read (arguments as bitline._bank_read, all units). Returns
    whether a helper taken over may still read the job's arrays, and the slot weights
    (arrays of the job that its helpers read)."""
    kcoef, validf = bitline._slot_weights(decay, valid, coeffs)
    gen = _publish(q, kc, vc, step, zero, kcoef, validf, coeffs, s_sat, array_size, S, phi, A, mail, fmail, state)
    fastest = _caller_units(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, S, phi, A, mail, state, gen)
    _finish(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, S, phi, A, mail, state, gen, fastest)
    still_in = False
    for w in range(helpers):
        still_in = still_in or atomics.load(mail, IN_JOB + w) == gen
    return still_in, kcoef, validf


@numba.njit(cache=True, nogil=True)
def _publish(q, kc, vc, step, zero, kcoef, validf, coeffs, s_sat, array_size, S, phi, A, mail, fmail, state):
    """Write the job into the mailbox and open it; returns its number."""
    units = q.shape[0] * q.shape[1]
    gen = (atomics.load(mail, TICKET) >> 32) + 1
    atomics.store(mail, TICKET, (gen << 32) | MASK)   # closed: no claim succeeds while the job is written
    mail[F_UNITS] = units
    mail[F_F64] = 1 if q.itemsize == 8 else 0
    mail[F_Q], mail[F_KC], mail[F_VC] = q.ctypes.data, kc.ctypes.data, vc.ctypes.data
    mail[F_KCOEF], mail[F_VALIDF], mail[F_COEFFS] = kcoef.ctypes.data, validf.ctypes.data, coeffs.ctypes.data
    mail[F_S], mail[F_PHI], mail[F_A] = S.ctypes.data, phi.ctypes.data, A.ctypes.data
    mail[F_KV], mail[F_G], mail[F_D], mail[F_M] = q.shape[0], q.shape[1], q.shape[2], kc.shape[2]
    mail[F_ASIZE], mail[F_NCOEF] = array_size, coeffs.shape[0]
    fmail[0], fmail[1], fmail[2] = step, zero, s_sat
    for u in range(units):
        atomics.store(state, u, gen << 2 | OPEN)
    atomics.store(mail, DONE, 0)
    atomics.store(mail, TICKET, gen << 32)            # open
    return gen


@numba.njit(cache=True, nogil=True)
def _caller_units(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, S, phi, A, mail, state, gen):
    """The caller's units, as long as any is left to hand out; returns its fastest (cycles;
    a unit the caller was preempted in does not count, it would stretch the patience)."""
    fastest = -1
    while True:
        u = _claim(mail, gen)
        if u < 0:
            return fastest
        atomics.store(state, u, gen << 2 | TAKEN)
        t0 = atomics.cycles()
        _compute_out(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, u, S, phi, A)
        took = atomics.cycles() - t0
        fastest = took if fastest < 0 or took < fastest else fastest
        atomics.add(mail, DONE, 1)


@numba.njit(cache=True, nogil=True)
def _finish(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, S, phi, A, mail, state, gen, fastest):
    """Wait for the helpers' units; after PATIENCE x the caller's fastest unit, take back
    those not yet committing and compute them here (counted in TAKEN_BACK)."""
    units = q.shape[0] * q.shape[1]
    waited = atomics.cycles()
    while atomics.load(mail, DONE) < units:
        if atomics.cycles() - waited < PATIENCE * fastest:
            continue
        for u in range(units):
            st = atomics.load(state, u)
            if (st & 3) != TAKEN and (st & 3) != COMMITTING and atomics.compare_exchange(state, u, st,
                                                                                           gen << 2 | TAKEN):
                _compute_out(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, u, S, phi, A)
                atomics.add(mail, DONE, 1)
                mail[TAKEN_BACK] += 1


@numba.njit(cache=True, nogil=True)
def _help(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, S, phi, A, mail, state, gen, u):
    """A helper's units of job gen, from its claimed unit u on: each computed into the
    helper's buffers and copied into the outputs if the caller has not taken it back."""
    G, D, M = q.shape[1], q.shape[2], kc.shape[2]
    S_row, phi_row = np.empty(M, q.dtype), np.empty(M, q.dtype)
    A_unit = np.empty((M // array_size, D), q.dtype)
    while u >= 0:
        if atomics.compare_exchange(state, u, gen << 2 | OPEN, gen << 2 | CLAIMED):
            _compute(q, kc, vc, fmail, kcoef, validf, coeffs, array_size, u, S_row, phi_row, A_unit)
            if atomics.compare_exchange(state, u, gen << 2 | CLAIMED, gen << 2 | COMMITTING):
                S[u // G, u % G] = S_row
                phi[u // G, u % G] = phi_row
                A[u // G, u % G] = A_unit
                atomics.add(mail, HELPED, 1)
                atomics.add(mail, DONE, 1)
        u = _claim(mail, gen)


@numba.njit(cache=True, nogil=True)
def _join(mail, fmail, state, t):
    """As a helper, work on the job of ticket t (its unit t & MASK is this helper's): the
    job's arrays from their addresses."""
    kv, g, d, m, a = mail[F_KV], mail[F_G], mail[F_D], mail[F_M], mail[F_ASIZE]
    kc = numba.carray(atomics.uint8_pointer(mail[F_KC]), (kv, d, m))
    vc = numba.carray(atomics.uint8_pointer(mail[F_VC]), (kv, m, d))
    # one branch per float type: a pointer's type is fixed when the function compiles
    if mail[F_F64]:
        p = atomics.float64_pointer
        _help(numba.carray(p(mail[F_Q]), (kv, g, d)), kc, vc, fmail, numba.carray(p(mail[F_KCOEF]), (3, m)),
              numba.carray(p(mail[F_VALIDF]), m), numba.carray(p(mail[F_COEFFS]), mail[F_NCOEF]), a,
              numba.carray(p(mail[F_S]), (kv, g, m)), numba.carray(p(mail[F_PHI]), (kv, g, m)),
              numba.carray(p(mail[F_A]), (kv, g, m // a, d)), mail, state, t >> 32, t & MASK)
    else:
        p = atomics.float32_pointer
        _help(numba.carray(p(mail[F_Q]), (kv, g, d)), kc, vc, fmail, numba.carray(p(mail[F_KCOEF]), (3, m)),
              numba.carray(p(mail[F_VALIDF]), m), numba.carray(p(mail[F_COEFFS]), mail[F_NCOEF]), a,
              numba.carray(p(mail[F_S]), (kv, g, m)), numba.carray(p(mail[F_PHI]), (kv, g, m)),
              numba.carray(p(mail[F_A]), (kv, g, m // a, d)), mail, state, t >> 32, t & MASK)


@numba.njit(cache=True, nogil=True)
def _serve(mail, fmail, state, w, idle_cycles, spin_cycles):
    """Helper w's loop: join open jobs; return 1 to stop, 0 to sleep (after idle_cycles of
    the cycle counter without work, its SLEEP flag set)."""
    atomics.store(mail, SLEEP + w, 0)
    since = atomics.cycles()
    while True:
        if atomics.load(mail, STOP):
            return 1
        t = atomics.load(mail, TICKET)
        if (t & MASK) < mail[F_UNITS]:
            atomics.store(mail, IN_JOB + w, t >> 32)   # before the claim: the caller then holds the arrays
            if atomics.compare_exchange(mail, TICKET, t, t + 1):
                # a claimed unit pins the job until the unit is done or taken back, so the
                # fields read now are this job's (the caller writes the next only after)
                _join(mail, fmail, state, t)
                since = atomics.cycles()
            atomics.store(mail, IN_JOB + w, 0)
            continue
        if atomics.cycles() - since >= idle_cycles:
            atomics.store(mail, SLEEP + w, 1)
            t = atomics.load(mail, TICKET)   # a job opened while going to sleep: serve it
            if (t & MASK) < mail[F_UNITS]:
                atomics.store(mail, SLEEP + w, 0)
                since = atomics.cycles()
                continue
            return 0
        if atomics.cycles() - since >= spin_cycles:   # (the next read of a run is due sooner: no syscall)
            atomics.yield_cpu()


@numba.njit(cache=True, nogil=True)
def _cycles():
    return atomics.cycles()


def _cycles_per_s() -> float:
    """The cycle counter's rate (it need not be the CPU's clock: a VM's may run at a fixed rate)."""
    c0, t0 = _cycles(), time.perf_counter()
    time.sleep(0.005)
    return (_cycles() - c0) / (time.perf_counter() - t0)


class StandDown:
    """When the team pauses (the constants above say why and when)."""

    def __init__(self, helpers: int):
        self.due_share = helpers / (helpers + 1)
        self.pauses = 0
        self._count_afresh()

    def _count_afresh(self):
        # reads with a take-back in a row, the helpers' share (average), reads counted, paused reads left
        self.strikes, self.share, self.reads, self.paused_reads = 0, self.due_share, 0, 0

    def after_read(self, took_back: bool, helped: int, units: int, *, helpers_live: bool = True) -> None:
        """Count a team read: a unit taken back or not, `helped` of `units` computed by helpers;
        helpers_live: a helper has computed a unit (before, starting threads takes a while)."""
        self.strikes = self.strikes + 1 if took_back else 0
        if helpers_live:
            self.share += (helped / units - self.share) / SHARE_READS
            self.reads += 1
        if self.strikes >= STRIKES or (self.reads >= 2 * SHARE_READS and self.share < self.due_share / 2):
            self._count_afresh()
            self.paused_reads = PAUSE_READS
            self.pauses += 1


class _Team:
    """The helpers of this process (started by the first split read; a forked child starts its own)."""

    def __init__(self, helpers: int):
        self.pid, self.helpers = os.getpid(), helpers
        self.mail = np.zeros(MAIL_SLOTS, np.int64)
        self.fmail = np.zeros(8, np.float64)
        self.state = np.zeros(MAX_UNITS, np.int64)
        self.lock = threading.Lock()   # one read at a time uses the mailbox (others run alone)
        self.held = []                 # (job, its arrays), while a helper taken over may still read them
        self.policy = StandDown(helpers)
        self.events = [threading.Event() for _ in range(helpers)]
        rate = _cycles_per_s()
        self.idle_cycles, self.spin_cycles = int(IDLE_S * rate), int(SPIN_S * rate)
        self.threads = [threading.Thread(target=self._helper, args=(w,), daemon=True, name=f"gcsim bank read {w}")
                        for w in range(helpers)]
        for th in self.threads:
            th.start()

    def _helper(self, w):
        event = self.events[w]
        while _serve(self.mail, self.fmail, self.state, w, self.idle_cycles, self.spin_cycles) == 0:
            event.wait()
            event.clear()

    def stop(self):
        self.mail[STOP] = 1
        for e in self.events:
            e.set()
        for th in self.threads:
            th.join(timeout=1.0)


_team = {}


def _start_team(helpers: int) -> _Team:
    """This process's team of `helpers` threads (a forked child, or a new count, starts its own)."""
    team = _team.get("t")
    if team is not None and team.pid == os.getpid():
        team.stop()
    team = _team["t"] = _Team(helpers)
    return team


@atexit.register
def _stop_team():
    team = _team.get("t")
    if team is not None and team.pid == os.getpid():
        team.stop()


def bank_read_team(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A, n):
    """One bank read (arguments as bitline._bank_read) by the caller and n - 1 helpers."""
    team = _team.get("t")
    if team is None or team.pid != os.getpid() or team.helpers != min(n - 1, MAX_HELPERS):
        team = _start_team(min(n - 1, MAX_HELPERS))
    units = q.shape[0] * q.shape[1]
    policy = team.policy
    if units > MAX_UNITS or policy.paused_reads or not team.lock.acquire(blocking=False):
        # (paused, or another Python thread is reading): the caller alone
        policy.paused_reads = max(0, policy.paused_reads - 1)
        bitline._compiled["kernel"](q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi, A, 0,
                                    units)
        return
    try:
        mail = team.mail
        for w in range(team.helpers):
            if mail[SLEEP + w]:
                team.events[w].set()
        taken_back, helped = mail[TAKEN_BACK], mail[HELPED]
        held = team.held
        if held:   # earlier jobs' arrays, kept while a helper taken over might read them
            in_jobs = set(mail[IN_JOB:IN_JOB + team.helpers].tolist())
            team.held = held = [job for job in held if job[0] in in_jobs]
        still_in, kcoef, validf = team_read(q, kc, vc, step, zero, decay, valid, coeffs, s_sat, array_size, S, phi,
                                            A, mail, team.fmail, team.state, team.helpers)
        if still_in:
            held.append((int(mail[TICKET] >> 32), q, kc, vc, kcoef, validf, coeffs, S, phi, A))
        policy.after_read(mail[TAKEN_BACK] != taken_back, mail[HELPED] - helped, units,
                          helpers_live=mail[HELPED] > 0)
    finally:
        team.lock.release()
