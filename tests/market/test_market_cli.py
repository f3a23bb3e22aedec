"""``vdg market clear`` and ``vdg experiment mda`` through click's runner."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from experiments.commands.market import market, mda

BOOK = """id,owner,side,quantity_kwh,price_eur_per_kwh,slot
b1,h1,buy,5,0.50,0
b2,h2,buy,0.5,0.45,0
b3,h3,buy,3,0.40,0
b4,h4,buy,2,0.30,0
s1,h5,sell,2,0.10,0
s2,h6,sell,2,0.20,0
s3,h7,SELL,10,0.35,0
x1,h1,buy,1,0.30,1
"""


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(BOOK)
    return path


def test_clear_csv_one_row_per_input_order(book):
    result = CliRunner().invoke(market, ["clear", str(book)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == ["id", "slot", "filled_kwh", "price_eur_per_kwh"]
    got = [(r["id"], r["slot"], float(r["filled_kwh"]), r["price_eur_per_kwh"]) for r in rows]
    assert got == [("b1", "0", 4.0, "0.4"), ("b2", "0", 0.0, ""), ("b3", "0", 0.0, ""),
                   ("b4", "0", 0.0, ""), ("s1", "0", 2.0, "0.35"), ("s2", "0", 2.0, "0.35"),
                   ("s3", "0", 0.0, ""), ("x1", "1", 0.0, "")]


def test_clear_json_uniform_with_k(book, tmp_path):
    out = tmp_path / "res.json"
    result = CliRunner().invoke(market, ["clear", str(book), "--mechanism", "uniform", "--k", "1",
                                         "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "uniform: 8 orders, 2 slot(s), traded 8.5 kWh" in result.output
    data = json.loads(out.read_text())
    assert data["mechanism"] == "uniform"
    assert data["slots"][0]["buy_price_eur_per_kwh"] == 0.40
    assert data["slots"][1]["traded_kwh"] == 0
    assert [o["filled_kwh"] for o in data["orders"]] == [5.0, 0.5, 3.0, 0, 2.0, 2.0, 4.5, 0]
    assert data["orders"][-1]["price_eur_per_kwh"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOOK.replace("b2,h2,buy,0.5", "b2,h2,buy,nan"),
         "line 3: order 'b2': quantity_kwh must be finite and > 0, got nan"),
        (BOOK.replace("b2,h2,buy,0.5,0.45", "b2,h2,buy,0.5,cheap"),
         "order 'b2': price_eur_per_kwh must be a finite number, got 'cheap'"),
        (BOOK.replace("s1,h5,sell", "s1,h5,give"), "order 's1': side must be 'buy' or 'sell'"),
        (BOOK.replace("x1,h1,buy,1,0.30,1", "x1,h1,buy,1,0.30,late"),
         "order 'x1': slot must be an integer >= 0, got 'late'"),
        (BOOK.replace("x1,", "b1,"), "order 'b1': id is used twice"),
        (BOOK.replace("owner,", ""), "missing column(s) owner"),
    ],
)
def test_clear_bad_input_exits_1_naming_the_field(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = CliRunner().invoke(market, ["clear", str(path)])
    assert result.exit_code == 1
    assert message in result.output


def test_clear_usage_errors_exit_2(book):
    assert CliRunner().invoke(market, ["clear", str(book), "--mechanism", "vcg"]).exit_code == 2
    assert CliRunner().invoke(market, ["clear", str(book), "--k", "2"]).exit_code == 2
    assert CliRunner().invoke(market, ["clear", "missing.csv"]).exit_code == 2


def test_registered_in_the_vdg_command(book):
    from experiments.cli import cli  # noqa: PLC0415 - the full CLI also loads other layers

    result = CliRunner().invoke(cli, ["market", "clear", str(book), "--mechanism", "efficient"])
    assert result.exit_code == 0, result.output
    assert "s3,0,4.5,0.35" in result.output
    assert CliRunner().invoke(cli, ["experiment", "mda", "--help"]).exit_code == 0


def test_mda_writes_table_and_plots(tmp_path):
    out = tmp_path / "mda"
    result = CliRunner().invoke(mda, ["--out", str(out), "--traders", "4,16", "--replicates", "3",
                                      "--deviators", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((out / "mda.csv").read_text())))
    assert len(rows) == 2 * 5
    assert {r["mechanism"] for r in rows} == {"huang", "uniform", "pay-as-bid", "mcafee",
                                              "efficient"}
    for name in ("mda_efficiency.png", "mda_surplus.png", "mda_misreport.png"):
        assert (out / name).stat().st_size > 1000
    assert CliRunner().invoke(mda, ["--out", str(out), "--traders", "1"]).exit_code == 1
    assert CliRunner().invoke(mda, ["--out", str(out), "--traders", "a,b"]).exit_code == 2
