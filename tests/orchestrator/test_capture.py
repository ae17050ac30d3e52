"""Capture files: format detection, readers over the recorded fixtures, the raw format."""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.capture import (
    FORMATS,
    KINDS,
    RAW_HEADER,
    CaptureFormatError,
    CaptureFrame,
    RawCaptureWriter,
    detect_format,
    read_capture,
    read_raw,
    recover_raw,
    seconds_to_ns,
)
from orchestrator.errors import SlipstreamError

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURES = DATA / "fixtures"
HB = FIXTURES / "hftbacktest"
CF = FIXTURES / "cryptofeed"
GC = FIXTURES / "gocryptotrader"

# (file, venue, market) for every fixture, and the expected format.
HB_FILES = {
    "spot/ethusdt_20240808.gz": "spot",
    "spot/ethusdt_20240809.gz": "spot",
    "usdm/btcusdt_20240808.gz": "usdm",
    "cm/btcusd_perp_20240808.gz": "coinm",
    "cm/btcusd_perp_20240809.gz": "coinm",
    "cm/ethusd_perp_20240808.gz": "coinm",
    "cm/ethusd_perp_20240809.gz": "coinm",
}
CF_FILES = {
    "sample_data/BINANCE.ws.1.0": ("binance", "spot"),
    "sample_data/BINANCE.http.0.0": ("binance", "spot"),
    "sample_data/BINANCE_US.ws.1.0": ("binance", "spot"),
    "sample_data/BINANCE_US.http.0.0": ("binance", "spot"),
    "sample_data/BINANCE_FUTURES.ws.1.0": ("binance", "usdm"),
    "sample_data/BINANCE_FUTURES.http.0.0": ("binance", "usdm"),
    "sample_data/BINANCE_DELIVERY.ws.1.0": ("binance", "coinm"),
    "sample_data/BINANCE_DELIVERY.http.0.0": ("binance", "coinm"),
    "sample_data/OKX.ws.1.0": ("okx", "unknown"),
    "sample_data-70789232/BINANCE.ws.1.0": ("binance", "spot"),
    "sample_data-70789232/BINANCE.http.0.0": ("binance", "spot"),
}

# Message counts per channel, as given in tests/data/SOURCES summary (SOURCES.md).
HB_COUNTS = {
    "spot/ethusdt_20240808.gz": {"depth": 3_434, "bookTicker": 24_077, "trade": 6_106, "rest": 1},
    "spot/ethusdt_20240809.gz": {"depth": 3_036, "bookTicker": 34_681, "trade": 8_409},
    "usdm/btcusdt_20240808.gz": {"depth": 6_551, "bookTicker": 66_089, "trade": 21_313, "rest": 1},
    "cm/btcusd_perp_20240808.gz": {
        "depth": 26_847,
        "bookTicker": 19_136,
        "trade": 2_286,
        "rest": 1,
    },
    "cm/btcusd_perp_20240809.gz": {"depth": 17_948, "bookTicker": 29_219, "trade": 2_949},
    "cm/ethusd_perp_20240808.gz": {
        "depth": 22_909,
        "bookTicker": 15_812,
        "trade": 1_732,
        "rest": 1,
    },
    "cm/ethusd_perp_20240809.gz": {"depth": 16_246, "bookTicker": 19_751, "trade": 1_863},
}
CF_BINANCE_COUNTS = {
    "sample_data/BINANCE": {"depthUpdate": 177, "bookTicker": 84, "aggTrade": 2, "kline": 2},
    "sample_data/BINANCE_FUTURES": {
        "depthUpdate": 764,
        "bookTicker": 613,
        "aggTrade": 91,
        "kline": 67,
    },
    "sample_data/BINANCE_DELIVERY": {
        "depthUpdate": 2_047,
        "bookTicker": 2_240,
        "aggTrade": 51,
        "kline": 33,
    },
    "sample_data/BINANCE_US": {"depthUpdate": 336, "bookTicker": 128, "aggTrade": 11, "kline": 5},
    "sample_data-70789232/BINANCE": {
        "depthUpdate": 614,
        "bookTicker": 570,
        "aggTrade": 24,
        "kline": 20,
    },
}
CF_REST_COUNTS = {
    "sample_data/BINANCE": 4,
    "sample_data/BINANCE_FUTURES": 4,
    "sample_data/BINANCE_DELIVERY": 10,
    "sample_data/BINANCE_US": 4,
    "sample_data-70789232/BINANCE": 10,
}


def all_fixtures() -> list[tuple[Path, str]]:
    files = [(HB / name, "hftbacktest") for name in HB_FILES]
    files += [(CF / name, "cryptofeed") for name in CF_FILES]
    files.append((GC / "okx_wsAllTrades.json", "okx-jsonl"))
    return files


def read_all(path: Path, format: str = "auto") -> list[CaptureFrame]:
    with read_capture(path, format) as reader:
        frames = list(reader)
    assert not reader.truncated
    return frames


def hb_channel(frame: CaptureFrame) -> str:
    if frame.kind == "rest":
        return "rest"
    return frame.conn_id.split("@")[1]  # ethusdt@depth@100ms -> depth


# ------------------------------------------------------------------------------- test data


@pytest.mark.unit
def test_fixture_set_is_complete_small_and_licensed():
    files = [p for p in FIXTURES.rglob("*") if p.is_file()]
    assert sorted(files) == sorted(p for p, _ in all_fixtures())
    total = sum(p.stat().st_size for p in files)
    assert 16_000_000 < total < 18_000_000
    assert max(p.stat().st_size for p in files) < 5 * 1024 * 1024
    licences = {p.name for p in (DATA / "LICENSES").iterdir()}
    assert licences == {
        "cryptofeed.LICENSE",
        "gocryptotrader.LICENSE",
        "hftbacktest.LICENSE",
    }
    readme = (DATA / "README.md").read_text()
    for name in licences:
        assert name in readme


# ------------------------------------------------------------------------------- detection


@pytest.mark.replay
@pytest.mark.parametrize(("path", "fmt"), all_fixtures(), ids=lambda v: str(v)[-40:])
def test_every_fixture_is_detected_from_content(path, fmt, tmp_path):
    assert detect_format(path) == fmt
    anonymous = tmp_path / "capture.bin"  # no name hint left
    shutil.copyfile(path, anonymous)
    assert detect_format(anonymous) == fmt


@pytest.mark.unit
def test_detect_format_rejects_empty_and_unknown_files(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty"):
        detect_format(empty)
    blank = tmp_path / "blank"
    blank.write_bytes(b"\n\n")
    with pytest.raises(CaptureFormatError, match="empty"):
        detect_format(blank)
    csv = tmp_path / "trades.csv"
    csv.write_bytes(b"\nts,price,qty\n1,2,3\n")
    with pytest.raises(CaptureFormatError) as info:
        detect_format(csv)
    assert info.value.line == 2 and str(csv) in str(info.value)
    assert isinstance(info.value, SlipstreamError)
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(b"hello world\n"))
    with pytest.raises(CaptureFormatError, match="unrecognised"):
        detect_format(gz)


@pytest.mark.unit
def test_read_capture_rejects_unknown_format_name():
    with pytest.raises(ValueError, match="'parquet'"):
        read_capture(GC / "okx_wsAllTrades.json", "parquet")
    assert set(FORMATS) == {"hftbacktest", "cryptofeed", "okx-jsonl", "slipstream-raw"}


# ------------------------------------------------------------------------------- hftbacktest


@pytest.mark.replay
@pytest.mark.parametrize("name", HB_FILES)
def test_hftbacktest_counts_match_sources(name):
    frames = read_all(HB / name)
    assert {(f.venue, f.market) for f in frames} == {("binance", HB_FILES[name])}
    counts = Counter(hb_channel(f) for f in frames)
    assert counts == HB_COUNTS[name]
    # The stream name agrees with the event type inside the payload.
    seen = Counter()
    for frame in frames:
        message = json.loads(frame.payload)
        if frame.kind == "rest":
            assert message["lastUpdateId"] > 0 and frame.conn_id == frame.source == ""
            continue
        assert message["stream"] == frame.conn_id
        event = message["data"].get("e", "bookTicker")  # spot bookTicker has no "e"
        seen[{"depthUpdate": "depth"}.get(event, event)] += 1
    assert seen == {k: v for k, v in HB_COUNTS[name].items() if k != "rest"}


@pytest.mark.replay
def test_hftbacktest_payloads_and_times_are_the_recorded_bytes():
    path = HB / "spot/ethusdt_20240808.gz"
    with gzip.open(path, "rb") as raw:
        lines = raw.read().splitlines()
    frames = read_all(path)
    assert len(frames) == len(lines)
    for frame, line in zip(frames, lines, strict=True):
        assert b"%d %s" % (frame.recv_ns, frame.payload) == line
    snapshot = next(f for f in frames if f.kind == "rest")
    assert snapshot.recv_ns == 1723161254152322667


@pytest.mark.replay
@pytest.mark.parametrize("name", HB_FILES)
def test_hftbacktest_market_is_inferred_from_content_without_path_hint(name, tmp_path):
    copy = tmp_path / "capture.gz"
    shutil.copyfile(HB / name, copy)
    with read_capture(copy) as reader:
        first = next(reader)
    assert first.market == HB_FILES[name]


@pytest.mark.replay
def test_reader_is_lazy():
    with read_capture(HB / "usdm/btcusdt_20240808.gz") as reader:
        next(reader)
        assert reader.lines_read < 10
        assert reader.frames_read == 1


# ------------------------------------------------------------------------------- cryptofeed


@pytest.mark.replay
@pytest.mark.parametrize("stem", CF_BINANCE_COUNTS)
def test_cryptofeed_binance_counts_match_sources(stem):
    venue_market = CF_FILES[f"{stem}.ws.1.0"]
    ws = read_all(CF / f"{stem}.ws.1.0")
    kinds = Counter(f.kind for f in ws)
    assert kinds == {"meta": 1, "ws": sum(CF_BINANCE_COUNTS[stem].values())}
    events = Counter()
    url = ws[0].conn_id
    assert url.startswith("wss://")
    for frame in ws[1:]:
        assert (frame.venue, frame.market) == venue_market
        assert frame.conn_id == url
        data = json.loads(frame.payload)["data"]
        events[data.get("e", "bookTicker")] += 1
    assert events == CF_BINANCE_COUNTS[stem]

    rest = read_all(CF / f"{stem}.http.0.0")
    assert len(rest) == CF_REST_COUNTS[stem]
    for frame in rest:
        assert frame.kind == "rest" and frame.conn_id == ""
        assert frame.source.startswith("https://") and "/depth?symbol=" in frame.source
        assert "lastUpdateId" in json.loads(frame.payload)


@pytest.mark.replay
def test_cryptofeed_okx_counts_match_sources():
    frames = read_all(CF / "sample_data/OKX.ws.1.0")
    assert Counter(f.kind for f in frames) == {"meta": 1, "sent": 3, "ws": 410}
    assert {(f.venue, f.market) for f in frames} == {("okx", "unknown")}
    channels = Counter()
    for frame in frames:
        if frame.kind == "meta":
            assert frame.payload == b"wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.5300605"
            continue
        assert frame.conn_id == "wss://ws.okx.com:8443/ws/v5/public"
        message = json.loads(frame.payload)
        if frame.kind == "sent":
            assert message["op"] == "subscribe"
        elif "event" in message:
            channels["ack"] += 1
        elif message["arg"]["channel"] == "books":
            channels["books_" + message["action"]] += 1
        else:
            channels[message["arg"]["channel"]] += 1
    assert channels == {
        "books_snapshot": 3,
        "books_update": 287,
        "trades": 74,
        "tickers": 28,
        "ack": 18,
    }


def _cf_line_parts(line: bytes) -> tuple[bytes, bytes]:
    """Independent split of a CF line into (timestamp text, payload or whole line)."""
    if b" <-> " in line.split(b": ", 1)[0]:
        return line.rsplit(b" ", 1)[1], line
    head, payload = line.split(b": ", 1)  # the timestamp never contains ": "
    return head.rsplit(b" ", 1)[-1], payload


@pytest.mark.replay
@pytest.mark.parametrize("name", CF_FILES)
def test_cryptofeed_times_are_exact_and_payloads_verbatim(name):
    path = CF / name
    lines = [line for line in path.read_bytes().split(b"\n") if line]
    frames = read_all(path)
    assert len(frames) == len(lines)
    for frame, line in zip(frames, lines, strict=True):
        ts, payload = _cf_line_parts(line)
        assert frame.recv_ns == int(Decimal(ts.decode()) * 10**9)
        assert frame.payload == payload


@pytest.mark.unit
def test_cryptofeed_colon_space_inside_json_stays_in_payload(tmp_path):
    path = tmp_path / "BINANCE.ws.1.0"
    path.write_bytes(
        b"wss://x.binance.com/ws <-> 1.5\n"
        b'1633998512.0633569: {"msg": "a: b", "t": "1: 2"}\n'
        b'wss://x.binance.com/ws <- 2: {"op": "x: y"}\n'
    )
    frames = read_all(path)
    assert frames[1].payload == b'{"msg": "a: b", "t": "1: 2"}'
    assert frames[1].recv_ns == 1_633_998_512_063_356_900
    assert frames[2].payload == b'{"op": "x: y"}' and frames[2].recv_ns == 2 * 10**9
    assert frames[0].recv_ns == 1_500_000_000


@pytest.mark.replay
@pytest.mark.parametrize("name", CF_FILES)
def test_cryptofeed_venue_from_url_when_name_says_nothing(name, tmp_path):
    copy = tmp_path / "capture.txt"
    shutil.copyfile(CF / name, copy)
    frames = read_all(copy)
    assert {(f.venue, f.market) for f in frames} == {CF_FILES[name]}


@pytest.mark.unit
def test_cryptofeed_unknown_venue_is_an_error(tmp_path):
    path = tmp_path / "capture.txt"
    path.write_bytes(b'1.0: {"a":1}\n')
    with pytest.raises(CaptureFormatError, match="cannot tell the venue"):
        read_capture(path)


@pytest.mark.unit
@given(
    whole=st.integers(0, 10**11),
    frac=st.text("0123456789", max_size=12),
)
def test_seconds_to_ns_matches_decimal(whole, frac):
    text = f"{whole}.{frac}" if frac else str(whole)
    expected = int(Decimal(text) * 10**9)  # truncates past the ninth decimal, like the reader
    assert seconds_to_ns(text) == expected
    assert seconds_to_ns(text.encode()) == expected


@pytest.mark.unit
@pytest.mark.parametrize("bad", ["", "1e9", "-1.0", "1.", ".5", "1.5 "])
def test_seconds_to_ns_rejects_non_decimal(bad):
    with pytest.raises(ValueError, match="decimal seconds"):
        seconds_to_ns(bad)


# ------------------------------------------------------------------------------- OKX JSON lines


@pytest.mark.replay
def test_gocryptotrader_okx_file_reads_both_lines_without_trailing_newline():
    path = GC / "okx_wsAllTrades.json"
    assert not path.read_bytes().endswith(b"\n")
    frames = read_all(path)
    assert [json.loads(f.payload)["data"][0]["tradeId"] for f in frames] == [
        "674510826",
        "674510827",
    ]
    assert {(f.recv_ns, f.venue, f.market, f.kind) for f in frames} == {(0, "okx", "unknown", "ws")}
    assert b"\n".join(f.payload for f in frames) == path.read_bytes()


# ------------------------------------------------------------------------------- malformed input


def _gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "content", "line", "match"),
    [
        (
            "hb.gz",
            b'1 {"stream":"a@trade","data":{}}\n2 {"stream":"a@trade","da\n3 {"data":{}}\n',
            2,
            "expected '<recv_ns> <json object>'",
        ),
        ("hb2.gz", b'1 {"stream":"a@trade","data":{}}\n2 {"other":1}\n', 2, "neither"),
        ("BINANCE.ws.1.0", b'u <-> 1.0\n1.0: {"a":1}\ngarbage line\n2.0: {}\n', 3, "no cryptofeed"),
        ("OKX.ws.1.0", b"u <-> 1.0\n1.0: \n", 2, "empty payload"),
        ("okx.json", b'{"arg":{}}\n{"arg":\n{"arg":{}}', 2, "not JSON"),
        ("okx2.json", b'{"arg":{}}\n[1, 2]\n', 2, "JSON object"),
    ],
)
def test_malformed_line_raises_with_path_and_line(tmp_path, name, content, line, match):
    path = tmp_path / name
    if name.endswith(".gz"):
        _gz(path, content)
    else:
        path.write_bytes(content)
    reader = read_capture(path)
    with pytest.raises(CaptureFormatError, match=match) as info:
        list(reader)
    assert info.value.line == line
    assert f"{path}:{line}:" in str(info.value)


@pytest.mark.unit
def test_corrupt_gzip_raises_capture_format_error(tmp_path):
    data = bytearray(
        gzip.compress(b"".join(b'%d {"stream":"s","data":{}}\n' % i for i in range(999)))
    )
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8
    path = tmp_path / "bad.gz"  # no market in the path: the content peek meets the damage
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureFormatError, match="corrupt compressed data"):
        list(read_capture(path, "hftbacktest"))
    head = tmp_path / "head.gz"
    head.write_bytes(gzip.compress(b"x")[:10] + b"\xff" * 20)
    with pytest.raises(CaptureFormatError, match="corrupt compressed data"):
        detect_format(head)


@pytest.mark.unit
def test_overlong_line_is_refused(tmp_path, monkeypatch):
    import orchestrator.capture.records as records

    monkeypatch.setattr(records, "MAX_LINE_BYTES", 100)
    path = tmp_path / "okx.json"
    path.write_bytes(b'{"arg":{}}\n{"arg":"' + b"x" * 200 + b'"}\n')
    with pytest.raises(CaptureFormatError, match="longer than 100 bytes") as info:
        list(read_capture(path))
    assert info.value.line == 2


# ------------------------------------------------------------------------------- raw format

ids = st.text(max_size=40)
tokens = st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)
payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"", b"\n", b"\t", b"\r\n", b"%09", b"\xff\xfe", b'{"a":"b\\n"}']),
)
frames_strategy = st.builds(
    CaptureFrame,
    recv_ns=st.integers(0, 2**63 - 1),
    venue=tokens,
    market=tokens,
    conn_id=ids,
    kind=st.sampled_from(sorted(KINDS)),
    source=ids,
    payload=payloads,
)


@pytest.mark.unit
@settings(max_examples=150, deadline=None)
@given(frames=st.lists(frames_strategy, max_size=30), flush_every=st.integers(1, 5))
def test_raw_round_trip_is_exact(frames, flush_every):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cap.raw.gz"
        with RawCaptureWriter(path, flush_every=flush_every) as out:
            for frame in frames:
                out.write(frame)
        assert detect_format(path) == "slipstream-raw"
        with read_raw(path) as reader:
            back = list(reader)
        assert not reader.truncated
        assert back == frames
        assert all(type(f.payload) is bytes for f in back)


@pytest.mark.unit
def test_raw_file_layout_is_as_documented(tmp_path):
    path = tmp_path / "cap.gz"
    with RawCaptureWriter(path) as out:
        out.write(CaptureFrame(5, "okx", "swap", "wss://a\tb", "ws", "", b'{"x":1}'))
        out.write(CaptureFrame(6, "binance", "spot", "", "rest", "https://h/p?q=%", b"a\nb"))
    text = gzip.decompress(path.read_bytes())
    assert text == (
        RAW_HEADER + b"\n"
        b'5\tokx\tswap\tws\twss://a%09b\t\tt\t{"x":1}\n'
        b"6\tbinance\tspot\trest\t\thttps://h/p?q=%25\tb\tYQpi\n"
    )


@pytest.mark.replay
def test_raw_round_trips_a_whole_fixture(tmp_path):
    source = CF / "sample_data/OKX.ws.1.0"
    frames = read_all(source)
    path = tmp_path / "okx.raw.gz"
    with RawCaptureWriter(path) as out:
        for frame in frames:
            out.write(frame)
    assert read_all(path) == frames


def _sample_frames(n: int) -> list[CaptureFrame]:
    return [
        CaptureFrame(10**18 + i, "binance", "spot", "s@trade", "ws", "", b'{"i":%d}' % i)
        for i in range(n)
    ]


@pytest.mark.unit
def test_raw_reader_stops_cleanly_at_crash_tail(tmp_path, caplog):
    path = tmp_path / "live.gz"
    frames = _sample_frames(50)
    out = RawCaptureWriter(path, flush_every=1)
    for frame in frames:
        out.write(frame)
    crashed = tmp_path / "crashed.gz"
    shutil.copyfile(path, crashed)  # what is on disk if the process dies now
    out.close()
    with read_raw(crashed) as reader:
        back = list(reader)
    assert back == frames
    assert reader.truncated
    assert "gzip stream ends early" in caplog.text


@pytest.mark.unit
def test_raw_reader_returns_a_prefix_at_every_cut(tmp_path):
    path = tmp_path / "full.gz"
    frames = _sample_frames(40)
    with RawCaptureWriter(path, flush_every=7) as out:
        for frame in frames:
            out.write(frame)
    data = path.read_bytes()
    cut = tmp_path / "cut.gz"
    lengths = set()
    for size in range(1, len(data)):
        cut.write_bytes(data[:size])
        with read_raw(cut) as reader:
            back = list(reader)
        assert back == frames[: len(back)]
        assert reader.truncated
        lengths.add(len(back))
    assert {0, 35, 40} <= lengths  # flushes every 7 frames; the trailer cut keeps all 40


@pytest.mark.unit
def test_raw_partial_last_line_is_dropped_and_reported(tmp_path):
    path = tmp_path / "partial.gz"
    line = b'1\tokx\tspot\tws\t\t\tt\t{"a":1}'
    _gz(path, RAW_HEADER + b"\n" + line + b"\n" + line[:-3])
    with read_raw(path) as reader:
        back = list(reader)
    assert len(back) == 1 and back[0].payload == b'{"a":1}'
    assert reader.truncated


@pytest.mark.unit
def test_raw_append_adds_a_member_without_a_second_header(tmp_path):
    path = tmp_path / "a.gz"
    frames = _sample_frames(6)
    with RawCaptureWriter(path, mode="a") as out:  # creates
        for frame in frames[:3]:
            out.write(frame)
    with RawCaptureWriter(path, mode="a") as out:
        for frame in frames[3:]:
            out.write(frame)
    assert read_all(path) == frames
    assert gzip.decompress(path.read_bytes()).count(RAW_HEADER) == 1
    with pytest.raises(FileExistsError):
        RawCaptureWriter(path)


@pytest.mark.unit
def test_raw_append_to_truncated_file_is_refused_until_recovered(tmp_path):
    path = tmp_path / "live.gz"
    frames = _sample_frames(10)
    out = RawCaptureWriter(path, flush_every=1)
    for frame in frames:
        out.write(frame)
    crashed = tmp_path / "crashed.gz"
    shutil.copyfile(path, crashed)
    out.close()
    with pytest.raises(CaptureFormatError, match="recover_raw"):
        RawCaptureWriter(crashed, mode="a")
    fixed = tmp_path / "fixed.gz"
    assert recover_raw(crashed, fixed) == 10
    with RawCaptureWriter(fixed, mode="a") as more:
        more.write(frames[0])
    assert read_all(fixed) == [*frames, frames[0]]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "line", "match"),
    [
        (b"1\tokx\tspot\tws\t\t\tt\n", 2, "8 tab-separated fields"),
        (b"x1\tokx\tspot\tws\t\t\tt\t{}\n", 2, "recv_ns"),
        (b"9223372036854775808\tokx\tspot\tws\t\t\tt\t{}\n", 2, "recv_ns"),
        (b"1\tOKX\tspot\tws\t\t\tt\t{}\n", 2, "venue"),
        (b"1\tokx\tspot\tpush\t\t\tt\t{}\n", 2, "unknown kind"),
        (b"1\tokx\tspot\tws\t%zz\t\tt\t{}\n", 2, "bad escape"),
        (b"1\tokx\tspot\tws\t\t\tb\t@@@\n", 2, "base64"),
        (b"1\tokx\tspot\tws\t\t\tq\t{}\n", 2, "encoding"),
        (b"1\tokx\tspot\tws\t\t\tt\t{}\n1\tokx\tspot\tws\t\xff\t\tt\t{}\n", 3, "conn_id"),
    ],
)
def test_raw_malformed_line_raises_with_line_number(tmp_path, body, line, match):
    path = _gz(tmp_path / "bad.gz", RAW_HEADER + b"\n" + body + b"1\tokx\tspot\tws\t\t\tt\t{}\n")
    with pytest.raises(CaptureFormatError, match=match) as info:
        list(read_raw(path))
    assert info.value.line == line


@pytest.mark.unit
def test_raw_header_is_checked(tmp_path):
    wrong_version = _gz(tmp_path / "v2.gz", b"slipstream-raw\t2\n")
    assert detect_format(wrong_version) == "slipstream-raw"
    with pytest.raises(CaptureFormatError, match="version") as info:
        list(read_capture(wrong_version))
    assert info.value.line == 1
    other = _gz(tmp_path / "other.gz", b'1 {"stream":"x"}\n')
    with pytest.raises(CaptureFormatError, match="not a slipstream-raw"):
        list(read_raw(other))
    empty = tmp_path / "empty.gz"
    empty.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty"):
        read_raw(empty)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (CaptureFrame(-1, "okx", "spot", "", "ws", "", b""), "recv_ns"),
        (CaptureFrame(2**63, "okx", "spot", "", "ws", "", b""), "recv_ns"),
        (CaptureFrame(1, "OKX", "spot", "", "ws", "", b""), "venue"),
        (CaptureFrame(1, "okx", "", "", "ws", "", b""), "market"),
        (CaptureFrame(1, "okx", "spot", "", "push", "", b""), "kind"),
        (CaptureFrame(1, "okx", "spot", "", "ws", "", "text"), "payload"),  # type: ignore[arg-type]
        (CaptureFrame(1, "okx", "spot", "\ud800", "ws", "", b""), "UTF-8"),
    ],
)
def test_raw_writer_rejects_invalid_frames_and_writes_nothing(tmp_path, frame, match):
    path = tmp_path / "w.gz"
    with RawCaptureWriter(path) as out, pytest.raises(ValueError, match=match):
        out.write(frame)
    assert out.frames_written == 0
    assert read_all(path) == []
    with pytest.raises(RuntimeError, match="closed"):
        out.write(_sample_frames(1)[0])
