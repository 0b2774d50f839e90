"""sweeper.report.zoo: the zoo's CSV, JSON and markdown parse back to the counted rows."""

from __future__ import annotations

import csv
import io
import json

from sweeper import zoo
from sweeper.report import zoo as zoo_report


def test_csv_and_json_parse_back_to_the_same_rows():
    result = zoo.list_candidates(archs=["unet", "pan"], encoders=["resnet18", "resnet34"], jobs=1)
    rows = zoo.sort_candidates(result.candidates, "flops")
    parsed = list(csv.DictReader(io.StringIO(zoo_report.to_csv(rows))))
    records = zoo.to_records(rows)
    assert [r["encoder"] for r in parsed] == [r["encoder"] for r in records]
    for got, want in zip(parsed, records):
        assert float(got["params_m"]) == want["params_m"]
        assert float(got["gflops"]) == want["gflops"]
        assert got["weights"] == want["weights"]
    back = [zoo.Candidate(**dict(r, weights=tuple(r["weights"]))) for r in json.loads(zoo_report.to_json(rows))]
    assert back == rows
    markdown = zoo_report.to_markdown(rows).splitlines()
    assert len(markdown) == 2 + len(rows) and markdown[2].startswith("| ")
