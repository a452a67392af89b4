"""gpufeed.Loader: batches from a gpufeed dataset, decoded by a ``gpufeed serve`` child process
into pinned shared memory and mapped here without a copy."""
from __future__ import annotations

import collections
import copy
import json
import os
import threading
import weakref
from typing import Any, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _torch
from .batch import Batch
from .child import ServerProcess, server_command
from .errors import CLOSED, INVALID_OPTION, PROTOCOL, GpufeedError
from .protocol import Message, check_hello, expect
from .transforms import transform_flags
from .shm import ColumnRegion, PaddedColumn, SlabMap, VarColumn, column_views, pad_column, parse_layout

# Deferred releases (batches whose async GPU copies may still run) kept before we wait on the oldest.
MAX_PENDING_RELEASES = 2
RESUME_FORMAT = "gpufeed-resume"


def _pack_flag(pack: Any) -> str:
    """The ``--pack column=length`` value of the pack option (a (column, length) pair, a dict or the text)."""
    if isinstance(pack, str):
        return pack
    if isinstance(pack, dict) and set(pack) <= {"column", "length"}:
        column, length = pack.get("column"), pack.get("length")
    elif isinstance(pack, (tuple, list)) and len(pack) == 2:
        column, length = pack
    else:
        raise GpufeedError(INVALID_OPTION, f"option pack: must be (column, length), {{'column', 'length'}} or 'column=length', got {pack!r}", {"option": "pack"})
    if not isinstance(column, str) or not column or "=" in column or isinstance(length, bool) or not isinstance(length, int):
        raise GpufeedError(INVALID_OPTION, f"option pack: must name a column and an integer length, got {pack!r}", {"option": "pack"})
    return f"{column}={length}"


def _close_session(owner: int, process: ServerProcess, maps: List[SlabMap], registered: List[int]) -> None:
    # A module-level function holding no reference to the session, so weakref.finalize can run it
    # when the loader is collected or at interpreter exit.
    if os.getpid() != owner:
        # A forked copy (a DataLoader worker, say) must not stop the parent's server.
        return
    process.close()
    for address in registered:
        _torch.host_unregister(address)
    registered.clear()
    for m in maps:
        m.close()


class _Session:
    """One ``gpufeed serve`` child: its channel, its mapped slabs and their CUDA registrations."""

    _count = 0

    def __init__(self, argv: Sequence[str], env: Optional[Dict[str, str]], start_timeout: float, register_cuda: bool) -> None:
        _Session._count += 1
        self.id = _Session._count
        self.process = ServerProcess(argv, env)
        self.maps: Dict[int, SlabMap] = {}
        self.registered: List[int] = []
        self.cuda_errors: List[str] = []
        maps: List[SlabMap] = []
        self.owner = os.getpid()
        self._finalizer = weakref.finalize(self, _close_session, self.owner, self.process, maps, self.registered)
        try:
            try:
                msg = self.process.channel.recv(start_timeout, self.process.check_alive)
            except GpufeedError as e:
                if e.details.get("reason") == "eof":
                    raise self.process.exit_error(before_hello=True) from None
                raise
            self.hello = check_hello(msg)
            pid = int(self.hello["pid"])
            for desc in self.hello["slabs"]:
                m = SlabMap(pid, desc)
                maps.append(m)
                self.maps[m.id] = m
            if not self.maps:
                raise GpufeedError(PROTOCOL, "bridge protocol: hello lists no slabs")
            self.regions: List[ColumnRegion] = parse_layout(self.hello["layout"], min(m.bytes for m in maps))
            if register_cuda:
                for m in maps:
                    err = _torch.host_register(m.address, m.bytes)
                    if err is None:
                        self.registered.append(m.address)
                    else:
                        self.cuda_errors.append(err)
                if self.cuda_errors:
                    _torch.log.warning(
                        "gpufeed: %d of %d slabs could not be registered with CUDA (%s); host-to-device copies from them run at pageable speed",
                        len(self.cuda_errors), len(maps), self.cuda_errors[0],
                    )
        except BaseException:
            self.close()
            raise

    @property
    def slots(self) -> int:
        return len(self.maps)

    def send(self, msg: Message) -> None:
        self.process.channel.send(msg)

    def recv(self, timeout: float) -> Message:
        try:
            return self.process.channel.recv(timeout, self.process.check_alive)
        except GpufeedError as e:
            if e.details.get("reason") == "eof":
                # The child is gone: say how (killed, crashed with an error on stderr).
                raise self.process.exit_error() from None
            raise

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self.process.proc.poll() is None

    def close(self) -> None:
        self._finalizer()


class Loader(_torch.DatasetBase):
    """Batches of a gpufeed dataset (a local folder, ``file://`` or ``s3://`` URI) for a training loop.

    Each ``for batch in loader`` is one epoch; the next ``for`` continues with the next epoch (with
    its own shuffle), as with a PyTorch DataLoader. Breaking out of a ``for`` and iterating again
    continues where it stopped. ``epochs`` bounds the stream (default: endless).

    Options mirror ``gpufeed dump``/``bench`` (same names, snake_case): batch_size, columns,
    transforms (image columns decoded into ``[B, 3, H, W]`` uint8 tensors; a dict as the JS option,
    or ``image="image=train:224:chw"`` as the CLI's ``--image``; README "Images"), seed,
    shuffle ('none' | 'window' | 'naive'), shuffle_window, partitions, drop_last, pad_last (the
    CLI's ``--pad``: fill the last step with repeated samples), epochs, rank,
    world_size (default: the launcher's RANK/WORLD_SIZE, torchrun's or Slurm's), workers (decode
    threads), slots (batches decoded ahead plus those you hold; default 2 x workers + 2), memory_bytes
    (pinned batch memory in all, an int of bytes or a string like "4GiB"; slots x slot size must fit
    it, and slots here hold the dataset's largest rows), decode_cache_bytes (decoded Parquet pieces
    the server's decode threads share; default 1 GiB), pin,
    verify_pieces (default True: each record batch / column chunk is checked against its manifest
    checksum as it is read; the CLI's ``--no-verify-pieces`` when False), on_corrupt ('fail', the
    default, or 'skip': a corrupt piece or shard is quarantined, its rows replaced by other rows of
    their batch and listed in ``batch.quarantined``; README, "Quarantine"), max_quarantined (with
    'skip': rows per epoch, a count or a fraction < 1, before GPUFEED_QUARANTINE_LIMIT),
    quarantine_log (a JSON Lines file of the events), and for
    remote datasets cache_dir, cache_bytes, min_free_bytes (bytes or '200GiB') and s3_endpoint;
    ``s3_timeout`` (seconds: the deadline of one storage request, all retries included; default 60)
    and ``s3_first_byte_timeout`` (seconds: an attempt with no response by then is retried;
    default 2.5, so an endpoint that never answers fails within about 15 s).

    Mixtures: ``uri`` may be a list of dataset URIs, with ``weights`` (shares of an epoch),
    ``samples`` (absolute counts per epoch) or ``repeat`` (upsampling factors), one value per
    dataset; ``epoch_samples`` (weighted: samples per epoch) and ``mixture_change`` ('refuse' or
    'next-epoch': resuming a state of another mixture). Each batch's ``stream`` (int32 per row) is
    the index of the dataset the row came from; ids are global (README, "Mixtures").
    ``pack`` (sequence packing, README "Packing"): ``("input_ids", 2048)``, ``{"column": "input_ids",
    "length": 2048}`` or ``"input_ids=2048"``: batches of ``[batch_size, 2048]`` tokens plus
    ``position_ids`` and ``seq_lens``; with ``pad_last`` the tail is padded with ``pad_token``
    (default 0) instead of dropped. ``pack`` with a mixture (``weights=``, ``samples=``, ``repeat=``)
    packs the mixture's documents in its plan order; ``stream`` is then each row's first segment's.

    Client options: ``pad=True`` turns variable-length columns into padded ``[rows, max_len]``
    copies with lengths (``pad_value`` fills list columns, zero bytes fill strings);
    ``as_numpy=True`` yields numpy arrays even when torch is installed;
    ``cuda`` (default: when torch sees a GPU and pin is on) registers the shared memory with CUDA so
    ``.cuda(non_blocking=True)`` is a real asynchronous DMA; ``timeout`` bounds the wait for one
    batch (seconds), ``start_timeout`` the server start; ``node_cmd`` the server command (default
    ``$GPUFEED_NODE_CMD`` or ``gpufeed`` on PATH).

    Asynchronous copies: when torch uses CUDA, a batch given up by asking for the next one is handed
    back to gpufeed only once an event recorded on the current CUDA stream at that moment has
    completed, so a ``.cuda(non_blocking=True)`` copy still in flight never sees its memory reused.
    Copies issued on another stream must be waited for before asking for the next batch (or keep the
    batch and release it after ``stream.synchronize()``).

    Not thread-safe for concurrent iteration; one iteration at a time (a new ``iter()`` ends the
    previous one).
    """

    def __init__(
        self,
        uri: Union[str, Sequence[str]],
        *,
        batch_size: int,
        weights: Optional[Sequence[float]] = None,
        samples: Optional[Sequence[int]] = None,
        repeat: Optional[Sequence[float]] = None,
        epoch_samples: Optional[int] = None,
        mixture_change: Optional[str] = None,
        columns: Optional[Sequence[str]] = None,
        transforms: Optional[Mapping[str, Any]] = None,
        image: Optional[Any] = None,
        seed: Optional[int] = None,
        shuffle: Optional[str] = None,
        shuffle_window: Optional[int] = None,
        partitions: Optional[int] = None,
        drop_last: bool = False,
        pad_last: bool = False,
        pack: Any = None,
        pad_token: Optional[int] = None,
        epochs: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        workers: Optional[int] = None,
        slots: Optional[int] = None,
        memory_bytes: Optional[Any] = None,
        decode_cache_bytes: Optional[Any] = None,
        pin: bool = True,
        verify_pieces: bool = True,
        on_corrupt: Optional[str] = None,
        max_quarantined: Optional[float] = None,
        quarantine_log: Optional[str] = None,
        cache_dir: Optional[str] = None,
        cache_bytes: Optional[Any] = None,
        min_free_bytes: Optional[Any] = None,
        s3_endpoint: Optional[str] = None,
        s3_timeout: Optional[float] = None,
        s3_first_byte_timeout: Optional[float] = None,
        metrics_port: Optional[int] = None,
        metrics_host: Optional[str] = None,
        metrics_dataset: Optional[str] = None,
        stall_timeout: Optional[float] = None,
        stall_action: Optional[str] = None,
        pad: bool = False,
        pad_value: Any = 0,
        as_numpy: bool = False,
        cuda: Optional[bool] = None,
        timeout: float = 600.0,
        start_timeout: float = 120.0,
        node_cmd: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        uris = [uri] if isinstance(uri, str) else list(uri) if isinstance(uri, (list, tuple)) else []
        if not uris or not all(isinstance(u, str) and u for u in uris):
            raise GpufeedError(INVALID_OPTION, "option uri: must be a dataset path or URI, or a list of them (a mixture)", {"option": "uri"})
        flags: List[str] = []
        # A mixture: one value per dataset, checked here for type and count, the rest by the server.
        for name, flag, values in (("weights", "--weights", weights), ("samples", "--samples", samples), ("repeat", "--repeat", repeat)):
            if values is None:
                continue
            if isinstance(values, (str, bytes)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise GpufeedError(INVALID_OPTION, f"option {name}: must be a list of numbers, one per dataset, got {values!r}", {"option": name})
            if len(values) != len(uris):
                raise GpufeedError(INVALID_OPTION, f"option {name}: needs one value per dataset: {len(uris)} datasets, {len(values)} values", {"option": name})
            flags.extend([flag, ",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values)])
        if mixture_change is not None:
            if mixture_change not in ("refuse", "next-epoch"):
                raise GpufeedError(INVALID_OPTION, f"option mixture_change: must be 'refuse' or 'next-epoch', got {mixture_change!r}", {"option": "mixture_change"})
            flags.extend(["--mixture-change", mixture_change])

        def num(name: str, flag: str, v: Any) -> None:
            # Types are checked here (they must become flags); ranges by the server, one source of truth.
            if v is None:
                return
            if isinstance(v, bool) or not isinstance(v, int):
                raise GpufeedError(INVALID_OPTION, f"option {name}: must be an integer, got {v!r}", {"option": name})
            flags.extend([flag, str(v)])

        num("batch_size", "--batch-size", batch_size)
        if batch_size is None:
            raise GpufeedError(INVALID_OPTION, "option batch_size: is required", {"option": "batch_size"})
        if columns is not None:
            if isinstance(columns, str) or not all(isinstance(c, str) and c and "," not in c for c in columns):
                raise GpufeedError(INVALID_OPTION, "option columns: must be a list of column names (without commas)", {"option": "columns"})
            flags.extend(["--columns", ",".join(columns)])
        flags.extend(transform_flags(transforms, image))
        num("epoch_samples", "--epoch-samples", epoch_samples)
        num("seed", "--seed", seed)
        if shuffle is not None:
            if not isinstance(shuffle, str):
                raise GpufeedError(INVALID_OPTION, f"option shuffle: must be a string, got {shuffle!r}", {"option": "shuffle"})
            flags.extend(["--shuffle", shuffle])
        num("shuffle_window", "--shuffle-window", shuffle_window)
        num("partitions", "--partitions", partitions)
        if drop_last:
            flags.append("--drop-last")
        if pad_last:
            flags.append("--pad")
        if pack is not None:
            flags.extend(["--pack", _pack_flag(pack)])
        num("pad_token", "--pad-token", pad_token)
        if epochs is None:
            flags.extend(["--epochs", "inf"])
        else:
            num("epochs", "--epochs", epochs)
        num("rank", "--rank", rank)
        num("world_size", "--world-size", world_size)
        num("workers", "--workers", workers)
        num("slots", "--slots", slots)
        if not pin:
            flags.append("--no-pin")
        if not isinstance(verify_pieces, bool):
            raise GpufeedError(INVALID_OPTION, f"option verify_pieces: must be True or False, got {verify_pieces!r}", {"option": "verify_pieces"})
        if not verify_pieces:
            flags.append("--no-verify-pieces")
        if on_corrupt is not None:
            if on_corrupt not in ("fail", "skip"):
                raise GpufeedError(INVALID_OPTION, f"option on_corrupt: must be 'fail' or 'skip', got {on_corrupt!r}", {"option": "on_corrupt"})
            flags.extend(["--on-corrupt", on_corrupt])
        if max_quarantined is not None:
            if isinstance(max_quarantined, bool) or not isinstance(max_quarantined, (int, float)) or not max_quarantined >= 0:
                raise GpufeedError(INVALID_OPTION, f"option max_quarantined: must be a count or a fraction < 1, got {max_quarantined!r}", {"option": "max_quarantined"})
            flags.extend(["--max-quarantined", repr(max_quarantined)])
        if quarantine_log is not None:
            if not isinstance(quarantine_log, str) or not quarantine_log:
                raise GpufeedError(INVALID_OPTION, f"option quarantine_log: must be a file path, got {quarantine_log!r}", {"option": "quarantine_log"})
            flags.extend(["--quarantine-log", quarantine_log])
        # Storage: sizes as an int of bytes or a string with units ("200GiB"); checked by the server.
        for name, flag, v in (("cache_dir", "--cache-dir", cache_dir), ("s3_endpoint", "--s3-endpoint", s3_endpoint),
                              ("cache_bytes", "--cache-bytes", cache_bytes), ("min_free_bytes", "--min-free-bytes", min_free_bytes),
                              ("memory_bytes", "--memory-bytes", memory_bytes),
                              ("decode_cache_bytes", "--decode-cache-bytes", decode_cache_bytes)):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and not v):
                raise GpufeedError(INVALID_OPTION, f"option {name}: must be a string or an integer, got {v!r}", {"option": name})
            flags.extend([flag, str(v)])
        # Storage deadlines in seconds, like timeout; the server takes milliseconds.
        for name, flag, v in (("s3_timeout", "--s3-timeout", s3_timeout), ("s3_first_byte_timeout", "--s3-first-byte-timeout", s3_first_byte_timeout)):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.001 <= v < 1e9:
                raise GpufeedError(INVALID_OPTION, f"option {name}: must be a number of seconds >= 0.001, got {v!r}", {"option": name})
            flags.extend([flag, str(max(1, round(v * 1000)))])
        # Metrics and stall diagnosis (README, "Metrics" and "Stalls"); ranges checked by the server.
        num("metrics_port", "--metrics-port", metrics_port)
        for name, flag, v in (("metrics_host", "--metrics-host", metrics_host), ("metrics_dataset", "--metrics-dataset", metrics_dataset),
                              ("stall_action", "--stall-action", stall_action)):
            if v is None:
                continue
            if not isinstance(v, str) or not v:
                raise GpufeedError(INVALID_OPTION, f"option {name}: must be a non-empty string, got {v!r}", {"option": name})
            flags.extend([flag, v])
        if stall_timeout is not None:
            if isinstance(stall_timeout, bool) or not isinstance(stall_timeout, (int, float)) or not 0 <= stall_timeout < 1e6:
                raise GpufeedError(INVALID_OPTION, f"option stall_timeout: must be a number of seconds >= 0 (0: off), got {stall_timeout!r}", {"option": "stall_timeout"})
            flags.extend(["--stall-timeout", repr(float(stall_timeout))])
        for name, v in (("timeout", timeout), ("start_timeout", start_timeout)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise GpufeedError(INVALID_OPTION, f"option {name}: must be a positive number of seconds, got {v!r}", {"option": name})

        self.uri = uri
        self._uris = uris
        self._flags = flags
        self._node_cmd = list(node_cmd) if node_cmd else None
        self._env = dict(env) if env is not None else None
        self._timeout = float(timeout)
        self._start_timeout = float(start_timeout)
        self._pad = bool(pad)
        self._pad_value = pad_value
        self._torch = _torch.torch is not None and not as_numpy
        self._cuda = (cuda if cuda is not None else pin and self._torch and _torch.cuda_usable()) and self._torch
        self._lock = threading.RLock()
        self._session: Optional[_Session] = None
        self._resume: Optional[Dict[str, Any]] = None
        self._failed: Optional[GpufeedError] = None
        self._closed = False
        self._final = False
        self._current: Optional[Batch] = None
        self._kept: Dict[int, Batch] = {}
        self._pending: Deque[Tuple[Batch, Any]] = collections.deque()
        self._iteration = 0
        self._epoch: Optional[int] = None
        self._inflight: Optional[str] = None
        self._stash: Optional[Message] = None

    # -- the server ----------------------------------------------------------------------------

    def _argv(self) -> List[str]:
        argv = server_command(self._node_cmd) + ["serve", *self._uris] + self._flags
        if self._resume is not None:
            argv += ["--resume-json", json.dumps(self._resume, separators=(",", ":"))]
        return argv

    def _live(self) -> _Session:
        if self._closed:
            raise GpufeedError(CLOSED, "the loader is closed")
        if self._failed is not None:
            raise self._failed
        if self._session is not None and self._session.owner != os.getpid():
            raise GpufeedError(
                INVALID_OPTION,
                "this gpufeed.Loader was started in another process (before a fork): create the loader in the process that iterates it",
                {"option": "fork"},
            )
        if self._session is None:
            self._session = _Session(self._argv(), self._env, self._start_timeout, self._cuda)
            self._resume = None
            self._final = False
        return self._session

    def _drop_session(self) -> None:
        s, self._session = self._session, None
        self._inflight = None
        self._stash = None
        for b in list(self._kept.values()) + [p[0] for p in self._pending] + ([self._current] if self._current else []):
            b._invalidate()
        self._kept.clear()
        self._pending.clear()
        self._current = None
        if s is not None:
            s.close()

    def _fail(self, err: GpufeedError, ask_state: bool) -> None:
        """The stream cannot go on: remember the error (raised again by every use until
        load_state_dict) and, when the server can still answer, where the stream stood."""
        s = self._session
        if ask_state and s is not None and s.alive:
            try:
                s.send({"type": "state"})
                self._resume = expect(s.recv(min(self._timeout, 10.0)), "state")["state"]
            except GpufeedError:
                pass
        self._failed = err
        self._drop_session()

    def _request(self, s: _Session, msg: Message) -> Message:
        self._settle(s)
        # Set until the reply is in: a KeyboardInterrupt in between leaves the reply on the wire.
        self._inflight = msg["type"]
        try:
            s.send(msg)
            reply = s.recv(self._timeout)
        except GpufeedError as e:
            self._inflight = None
            self._fail(e, ask_state=False)
            raise
        self._inflight = None
        return self._check_reply(reply)

    def _settle(self, s: _Session) -> None:
        """Reads the reply of a request that was interrupted (Ctrl-C) before it came; a batch it
        brought is handed out by the next ``next`` instead of asking for another."""
        kind, self._inflight = self._inflight, None
        if kind is None:
            return
        try:
            reply = s.recv(self._timeout)
        except GpufeedError as e:
            self._fail(e, ask_state=False)
            raise
        if kind == "next":
            self._stash = reply

    def _check_reply(self, reply: Message) -> Message:
        if reply["type"] == "error":
            err = GpufeedError.from_message(reply)
            if reply.get("fatal", True):
                self._fail(err, ask_state=True)
            raise err
        return reply

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        if _torch.in_dataloader_worker():
            raise GpufeedError(
                INVALID_OPTION,
                "gpufeed.Loader runs its own decode threads: use it with DataLoader(num_workers=0, batch_size=None)",
                {"option": "num_workers"},
            )
        with self._lock:
            self._iteration += 1
            s = self._live()
            return self._epoch_batches(self._iteration, int(s.hello["stepsPerEpoch"]))

    def _epoch_batches(self, iteration: int, steps: int) -> Iterator[Batch]:
        # One epoch has at most `steps` batches; the bound catches a server that never ends one.
        for _ in range(steps + 2):
            if iteration != self._iteration:
                return  # a newer iter() took over
            batch = self._next()
            if batch is None:
                return
            yield batch
        raise GpufeedError(PROTOCOL, f"bridge protocol: an epoch ran past the {steps} steps the server announced")

    def _next(self) -> Optional[Batch]:
        with self._lock:
            s = self._live()
            self._settle(s)
            if self._stash is not None:
                reply, self._stash = self._stash, None
                return self._on_next_reply(s, self._check_reply(reply))
            if self._final:
                return None
            prev = self._current
            prev_kept = prev is not None and not prev.released and prev.seq in self._kept
            if len(self._kept) >= s.slots:
                # Checked before anything changes, so releasing a kept batch and asking again works.
                raise GpufeedError(
                    INVALID_OPTION,
                    f"all {s.slots} batch slots are held by kept batches, so no batch can be decoded: "
                    "release() some, or open the loader with more slots=",
                    {"option": "slots", "kept": len(self._kept)},
                )
            self._current = None
            keep = prev_kept
            if prev is not None and not prev.released and not prev_kept:
                # The server keeps it too until the deferred release (see _defer_release).
                keep = self._defer_release(prev)
                if not keep:
                    prev._invalidate()
            self._flush_pending(s)
            reply = self._request(s, {"type": "next", "keep": True} if keep else {"type": "next"})
            return self._on_next_reply(s, reply)

    def _on_next_reply(self, s: _Session, reply: Message) -> Optional[Batch]:
        t = reply["type"]
        if t == "batch":
            batch = self._make_batch(s, reply)
            self._current = batch
            self._epoch = batch.epoch
            return batch
        if t == "end":
            if reply.get("final"):
                self._final = True
            return None
        err = GpufeedError(PROTOCOL, f"bridge protocol: expected batch or end, got {t!r}")
        self._fail(err, ask_state=False)
        raise err

    def _defer_release(self, b: Batch) -> bool:
        """With CUDA in use, releases wait for an event on the current stream (async copies)."""
        if not (self._torch and _torch.cuda_initialized()):
            return False
        self._pending.append((b, _torch.record_event()))
        return True

    def _flush_pending(self, s: _Session) -> None:
        # Events complete in stream order: looking at the oldest is enough. Bounded by the deque.
        for _ in range(len(self._pending)):
            b, ev = self._pending[0]
            crowded = len(self._kept) + len(self._pending) > s.slots - 1 or len(self._pending) > MAX_PENDING_RELEASES
            if not ev.query():
                if not crowded:
                    break
                ev.synchronize()
            self._pending.popleft()
            b._invalidate()
            self._request_quiet(s, {"type": "release", "seq": b.seq})

    def _request_quiet(self, s: _Session, msg: Message) -> None:
        # release gets no reply; a dead server shows at the next request.
        try:
            s.send(msg)
        except GpufeedError:
            pass

    def _make_batch(self, s: _Session, msg: Message) -> Batch:
        slab = s.maps.get(msg.get("slab"))  # type: ignore[arg-type]
        if slab is None or slab.base is None:
            raise GpufeedError(PROTOCOL, f"bridge protocol: batch in unknown slab {msg.get('slab')!r}")
        rows = int(msg["rows"])
        used = msg.get("used") or {}
        columns: Dict[str, Any] = {}
        valid: Dict[str, Any] = {}
        conv = _torch.to_tensor if self._torch else None
        for r in s.regions:
            data, v = column_views(slab.base, r, rows, used.get(r.name) if r.variable else None)
            if isinstance(data, VarColumn) and self._pad:
                # pad_value is for list columns; strings and binary pad with zero bytes.
                data = pad_column(data, self._pad_value if r.kind == "list" else 0)
            if conv is not None:
                data = type(data)(*(conv(f) for f in data)) if isinstance(data, (VarColumn, PaddedColumn)) else conv(data)
                if v is not None:
                    v = conv(v)
            columns[r.name] = data
            if v is not None:
                valid[r.name] = v
        ids = np.asarray(msg["ids"], dtype=np.int64)
        quarantined = [int(r) for r in msg.get("quarantined") or []]
        stream = np.asarray(msg["stream"], dtype=np.int32) if "stream" in msg else None
        return Batch(self, s.id, int(msg["seq"]), int(msg["epoch"]), int(msg["step"]), ids, columns, valid, quarantined, stream)

    # -- holding batches -----------------------------------------------------------------------

    def keep(self, batch: Batch) -> Batch:
        """Keeps the current batch past the next one, until ``release(batch)``."""
        with self._lock:
            if batch.released or self._session is None or batch._session != self._session.id or batch is not self._current and batch.seq not in self._kept:
                raise GpufeedError(INVALID_OPTION, "only the current batch can be kept (this one was released)", {"option": "keep"})
            self._kept[batch.seq] = batch
            return batch

    def release(self, batch: Batch) -> None:
        """Hands a batch back (idempotent). Kept batches must be released; others go by themselves."""
        with self._lock:
            s = self._session
            if batch.released or s is None or batch._session != s.id:
                batch._invalidate()
                return
            if any(p[0] is batch for p in self._pending):
                return
            if self._kept.pop(batch.seq, None) is None and batch is not self._current:
                return
            if batch is self._current:
                self._current = None
            if self._defer_release(batch):
                self._flush_pending(s)
                return
            batch._invalidate()
            self._request_quiet(s, {"type": "release", "seq": batch.seq})

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """The resume state after the last batch delivered (JSON-able; the same as the JS loader's
        ``loader.state()``, identical on every rank at the same step)."""
        with self._lock:
            if self._closed:
                raise GpufeedError(CLOSED, "the loader is closed")
            if self._session is None and self._resume is not None:
                return copy.deepcopy(self._resume)
            s = self._live()
            reply = self._request(s, {"type": "state"})
            return expect(reply, "state")["state"]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The next iteration continues exactly after the batch ``state`` was taken at (restarting
        the server). Also the way to go on after an error: ``load_state_dict(state_dict())``."""
        if not isinstance(state, Mapping) or state.get("format") != RESUME_FORMAT:
            raise GpufeedError(INVALID_OPTION, f"option state: must be a state from state_dict() (format {RESUME_FORMAT!r})", {"option": "state"})
        with self._lock:
            if self._closed:
                raise GpufeedError(CLOSED, "the loader is closed")
            self._drop_session()
            self._resume = json.loads(json.dumps(dict(state)))
            self._failed = None
            self._final = False
            self._epoch = None

    # -- facts ---------------------------------------------------------------------------------

    def _hello(self) -> Dict[str, Any]:
        with self._lock:
            return self._live().hello

    @property
    def slots(self) -> int:
        with self._lock:
            return self._live().slots

    @property
    def steps_per_epoch(self) -> int:
        return int(self._hello()["stepsPerEpoch"])

    @property
    def world(self) -> Dict[str, int]:
        return dict(self._hello()["world"])

    @property
    def schema(self) -> List[Dict[str, Any]]:
        return copy.deepcopy(self._hello()["columns"])

    @property
    def epoch(self) -> Optional[int]:
        """Epoch of the last batch delivered (None before the first)."""
        return self._epoch

    @property
    def metrics_address(self) -> Optional[str]:
        """``http://host:port/metrics`` of the server's Prometheus endpoint (with ``metrics_port``), else None."""
        v = self._hello().get("metricsAddress")
        return v if isinstance(v, str) else None

    def metrics(self) -> Dict[str, float]:
        """The server's metrics as a flat dict: ``name`` or ``name{label="v",...}`` -> value (the same
        figures as the Prometheus endpoint, without the rank and dataset labels). Starts the server
        if it is not running yet."""
        with self._lock:
            s = self._live()
            reply = expect(self._request(s, {"type": "metrics"}), "metrics")
            return {str(k): float(v) for k, v in dict(reply["metrics"]).items()}

    def diagnose(self) -> Dict[str, Any]:
        """The server's stall report (dict, with a ``text`` field) of the batch it waits for or takes next."""
        with self._lock:
            s = self._live()
            return dict(expect(self._request(s, {"type": "diagnose"}), "diagnose")["report"])

    @property
    def server_pid(self) -> Optional[int]:
        s = self._session
        return s.process.pid if s is not None else None

    @property
    def cuda_registered(self) -> bool:
        """Every slab is registered with CUDA in this process."""
        s = self._session
        return s is not None and len(s.registered) == len(s.maps) > 0

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stops the server and unmaps the memory (arrays still referenced keep their mapping until
        they go). Idempotent; also runs when the loader is collected and at interpreter exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_session()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> Dict[str, Any]:
        raise TypeError("gpufeed.Loader cannot be pickled: use DataLoader(num_workers=0); gpufeed decodes in its own threads")
