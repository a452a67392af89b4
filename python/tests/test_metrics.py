"""Metrics from Python: ``metrics_port=0`` starts the server's Prometheus endpoint on a free
loopback port (``loader.metrics_address``), and ``loader.metrics()`` returns the same figures as a
dict over the bridge; they agree with what this process received."""
from __future__ import annotations

import re
import urllib.request

import pytest

from conftest import ROWS, open_loader
from gpufeed import GpufeedError


def test_metrics_dict_and_endpoint_agree_with_the_epoch(datasets):
    with open_loader(datasets["arrow"], batch_size=10, epochs=1, metrics_port=0, metrics_dataset="toy", stall_timeout=30, stall_action="warn") as loader:
        batches = 0
        ids = []
        for b in loader:
            batches += 1
            ids.extend(int(i) for i in b.ids)
        assert sorted(ids) == list(range(ROWS))
        d = loader.metrics()
        assert d["gpufeed_batches_delivered_total"] == batches
        assert d["gpufeed_samples_delivered_total"] == ROWS
        assert d['gpufeed_data_wait_seconds_bucket{le="+Inf"}'] == batches - 1
        assert d["gpufeed_stalls_total"] == 0
        assert d["gpufeed_quarantined_samples_total"] == 0
        workers = [k for k in d if k.startswith("gpufeed_worker_batches_total{")]
        assert len(workers) == 2
        assert sum(d[k] for k in workers) == d["gpufeed_batches_decoded_total"]

        address = loader.metrics_address
        assert address is not None and re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", address), address
        with urllib.request.urlopen(address, timeout=30) as res:
            text = res.read().decode()
        line = next(l for l in text.splitlines() if l.startswith("gpufeed_samples_delivered_total{"))
        assert 'rank="0"' in line and 'world_size="1"' in line and 'dataset="toy"' in line, line
        assert float(line.rsplit(" ", 1)[1]) == ROWS

        report = loader.diagnose()
        assert report["rank"] == 0 and report["waiting"] is False
        assert report["text"].startswith("gpufeed diagnose: rank 0")


def test_without_metrics_port_there_is_no_endpoint_but_a_dict(datasets):
    with open_loader(datasets["parquet"], batch_size=16, epochs=1) as loader:
        n = sum(len(b.ids) for b in loader)
        assert loader.metrics_address is None
        assert loader.metrics()["gpufeed_samples_delivered_total"] == n == ROWS


@pytest.mark.parametrize("opts", [{"stall_timeout": -1}, {"stall_timeout": "5"}, {"metrics_port": "9000"}, {"stall_action": ""}])
def test_metrics_and_stall_kwargs_are_checked_here(datasets, opts):
    with pytest.raises(GpufeedError) as e:
        open_loader(datasets["arrow"], batch_size=4, **opts)
    assert e.value.code == "GPUFEED_INVALID_OPTION"
    assert e.value.details["option"] == next(iter(opts))


def test_a_bad_stall_action_is_refused_by_the_server(datasets):
    with open_loader(datasets["arrow"], batch_size=4, stall_action="explode") as loader:
        with pytest.raises(GpufeedError) as e:
            next(iter(loader))
        assert e.value.code == "GPUFEED_INVALID_OPTION"
        assert "explode" in e.value.message
