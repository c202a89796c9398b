"""Reads an HdrHistogram interval log with HdrHistogram's Python port (PyPI `hdrhistogram`) and
prints, per tag, how many values it holds and the largest, as JSON."""
import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 60_000_000, 3))
tags = {}
while True:
    interval = reader.get_next_interval_histogram()
    if interval is None:
        break
    seen = tags.setdefault(interval.get_tag() or "", {"count": 0, "max": 0, "intervals": 0})
    seen["count"] += interval.get_total_count()
    seen["max"] = max(seen["max"], interval.get_max_value())
    seen["intervals"] += 1
print(json.dumps(tags))
