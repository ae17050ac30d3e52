"""Event records: layouts, binary batches, trade conversion, registry, generated archive SQL."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext.feed import TRADE_DTYPE as FEED_TRADE_DTYPE
from orchestrator.data.archive import (
    COPY_HEADER,
    COPY_TRAILER,
    PG_EPOCH_US,
    ArchiveError,
    ArchiveSettings,
    build_copy_payload,
    decode_copy_payload,
)
from orchestrator.data.migrations import MIGRATIONS, TABLES, migration_sql, policy_sql
from orchestrator.data.records import (
    BATCH_HEADER,
    DTYPES,
    TRADE_DTYPE,
    BatchFormatError,
    InstrumentInfo,
    InstrumentRegistry,
    RecordKind,
    RegistryError,
    decode_batch,
    dtype_hash,
    empty,
    encode_batch,
    trades_as_feed,
    trades_from_feed,
)
from tests.support.fixtures import CF

pytestmark = pytest.mark.unit

SIZES = {
    RecordKind.DELTA: 48,
    RecordKind.SNAPSHOT: 48,
    RecordKind.TRADE: 48,
    RecordKind.TOP: 64,
    RecordKind.SIGNAL: 48,
    RecordKind.ORDER: 64,
    RecordKind.FILL: 72,
    RecordKind.LEDGER: 40,
}


def random_records(kind: RecordKind, n: int, seed: int = 0) -> np.ndarray:
    """Random bytes in every non-padding field (padding stays zero)."""
    rng = np.random.default_rng(seed)
    arr = empty(kind, n)
    for name in arr.dtype.names or ():
        if name.startswith("_"):
            continue
        sub = arr.dtype.fields[name][0]
        raw = rng.integers(0, 256, size=n * sub.itemsize, dtype=np.uint8)
        arr[name] = raw.view(sub)
    return arr


# ------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("kind", list(RecordKind))
def test_layout_sizes_offsets_and_no_hidden_padding(kind):
    dt = DTYPES[kind]
    assert dt.itemsize == SIZES[kind]
    assert dt.itemsize % 8 == 0
    covered = sum(dt.fields[n][0].itemsize for n in dt.names)
    assert covered == dt.itemsize  # every byte belongs to a named field
    for name in dt.names:
        sub, off = dt.fields[name][:2]
        assert off % sub.alignment == 0, name
    for common in ("exch_ns", "recv_ns", "inst", "venue"):
        assert common in dt.names
    assert dt.fields["exch_ns"][1] == 0 and dt.fields["recv_ns"][1] == 8


def test_trade_layout_is_byte_compatible_with_ext_feed():
    assert TRADE_DTYPE.itemsize == FEED_TRADE_DTYPE.itemsize
    for name in FEED_TRADE_DTYPE.names:
        if name == "_pad":
            assert TRADE_DTYPE.fields["venue"][1] == FEED_TRADE_DTYPE.fields[name][1]
            continue
        assert TRADE_DTYPE.fields[name][:2] == FEED_TRADE_DTYPE.fields[name][:2], name


def test_dtype_hash_changes_with_layout():
    a = np.dtype([("x", "<i8"), ("y", "<i4")])
    assert dtype_hash(a) == dtype_hash(np.dtype([("x", "<i8"), ("y", "<i4")]))
    assert dtype_hash(a) != dtype_hash(np.dtype([("x", "<i8"), ("z", "<i4")]))
    assert dtype_hash(a) != dtype_hash(np.dtype([("x", "<i8"), ("y", "<u4")]))
    assert dtype_hash(a) != dtype_hash(np.dtype([("y", "<i4"), ("x", "<i8")]))
    assert len({dtype_hash(d) for d in DTYPES.values()}) == len(DTYPES)
    with pytest.raises(TypeError):
        dtype_hash(np.dtype("<i8"))


# ------------------------------------------------------------------- batch format


@pytest.mark.parametrize("kind", list(RecordKind))
@pytest.mark.parametrize("n", [0, 1, 1000])
def test_batch_round_trip_exact(kind, n):
    recs = random_records(kind, n, seed=n + int(kind))
    buf = encode_batch(kind, recs)
    assert len(buf) == BATCH_HEADER.size + n * recs.dtype.itemsize
    got_kind, got = decode_batch(buf)
    assert got_kind == kind
    assert got.dtype == recs.dtype
    assert got.tobytes() == recs.tobytes()
    assert not got.flags.writeable  # zero-copy view of the buffer
    _, got2 = decode_batch(memoryview(bytearray(buf)), expect=kind)
    assert got2.tobytes() == recs.tobytes()


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 300), st.sampled_from(list(RecordKind)), st.integers(0, 2**32 - 1))
def test_batch_round_trip_property(n, kind, seed):
    recs = random_records(kind, n, seed)
    assert decode_batch(encode_batch(kind, recs))[1].tobytes() == recs.tobytes()


def test_encode_non_contiguous_slice():
    recs = random_records(RecordKind.TRADE, 10)
    _, got = decode_batch(encode_batch(RecordKind.TRADE, recs[::2]))
    assert got.tobytes() == recs[::2].copy().tobytes()


def test_encode_rejects_wrong_dtype_and_shape():
    with pytest.raises(TypeError, match="TRADE dtype"):
        encode_batch(RecordKind.TRADE, empty(RecordKind.DELTA, 3))
    with pytest.raises(TypeError, match="TRADE dtype"):
        encode_batch(RecordKind.TRADE, [1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one-dimensional"):
        encode_batch(RecordKind.TRADE, empty(RecordKind.TRADE, 4).reshape(2, 2))


def _patched(buf: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(buf)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:10], "shorter than its 32-byte header"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: _patched(b, 4, "<H", 99), "version is 99"),
        (lambda b: _patched(b, 6, "<H", 77), "kind is 77"),
        (lambda b: _patched(b, 16, "<Q", 12345), "layout hash"),
        (lambda b: _patched(b, 24, "<I", 40), "item size 40"),
        (lambda b: _patched(b, 8, "<Q", 6), "truncated"),
        (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "CRC-32"),
        (lambda b: _patched(b, 28, "<I", 0), "CRC-32"),
    ],
)
def test_decode_rejects_corrupt_buffers(mutate, message):
    buf = encode_batch(RecordKind.TRADE, random_records(RecordKind.TRADE, 5))
    with pytest.raises(BatchFormatError, match=message):
        decode_batch(mutate(buf))


def test_decode_checks_expected_kind_and_is_a_value_error():
    buf = encode_batch(RecordKind.LEDGER, empty(RecordKind.LEDGER, 2))
    with pytest.raises(BatchFormatError, match="holds LEDGER records, expected TRADE"):
        decode_batch(buf, expect=RecordKind.TRADE)
    with pytest.raises(ValueError):
        decode_batch(b"")


def test_header_fields_are_as_documented():
    recs = random_records(RecordKind.FILL, 3)
    buf = encode_batch(RecordKind.FILL, recs)
    magic, version, kind, count, dhash, itemsize, crc = struct.unpack_from("<4sHHQQII", buf)
    assert (magic, version, kind, count, itemsize) == (b"SLPB", 1, 7, 3, 72)
    assert dhash == dtype_hash(DTYPES[RecordKind.FILL])
    assert crc == zlib.crc32(recs.tobytes())


# ----------------------------------------------------------- trades <-> ext.feed


def _feed_trades(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.zeros(n, dtype=FEED_TRADE_DTYPE)
    t["exch_ns"] = rng.integers(1.6e18, 1.8e18, n)
    t["recv_ns"] = t["exch_ns"] + rng.integers(0, 10**7, n)
    t["trade_id"] = rng.integers(0, 2**40, n)
    t["price"] = rng.integers(1, 10**12, n)
    t["size"] = rng.integers(1, 10**9, n)
    t["inst"] = rng.integers(0, 3, n)
    t["side"] = rng.choice([-1, 0, 1], n)
    t["price_scale"] = rng.integers(0, 9, n)
    t["size_scale"] = rng.integers(0, 9, n)
    return t


def test_trades_from_feed_matches_per_row_reference():
    feed = _feed_trades(500)
    inst_map = np.array([17, 4, 9], dtype=np.int32)
    got = trades_from_feed(feed, venue=3, inst_map=inst_map)
    assert got.dtype == TRADE_DTYPE
    for i, row in enumerate(feed.tolist()):  # pure-Python reference, field by field
        exch, recv, tid, px, sz, inst, side, ps, ss, _pad = row
        assert got[i].tolist() == (exch, recv, tid, px, sz, int(inst_map[inst]), side, ps, ss, 3)
    assert not np.shares_memory(got, feed)


def test_trades_as_feed_is_zero_copy_and_inverse():
    recs = trades_from_feed(_feed_trades(50), venue=2)
    view = trades_as_feed(recs)
    assert view.dtype == FEED_TRADE_DTYPE
    assert np.shares_memory(view, recs)
    assert (view["_pad"] == 2).all()
    back = trades_from_feed(view, venue=2)
    assert back.tobytes() == recs.tobytes()


def test_trades_from_feed_rejects_bad_input():
    with pytest.raises(TypeError, match=r"ext\.feed\.TRADE_DTYPE"):
        trades_from_feed(empty(RecordKind.TRADE, 2), venue=1)
    with pytest.raises(ValueError, match="venue id"):
        trades_from_feed(_feed_trades(2), venue=0)
    with pytest.raises(ValueError, match="outside inst_map"):
        trades_from_feed(_feed_trades(20), venue=1, inst_map=np.array([1], dtype=np.int32))
    with pytest.raises(TypeError, match="TRADE_DTYPE"):
        trades_as_feed(empty(RecordKind.DELTA, 1))


def test_real_okx_trades_convert_exactly():
    from ext.okx import OkxFeed
    from orchestrator.capture import read_capture

    feed = OkxFeed("spot")
    for frame in read_capture(CF / "OKX.ws.1.0"):
        if frame.kind == "ws" and b'"channel":"trades"' in frame.payload:
            feed.on_frame(frame.payload, frame.recv_ns)
    raw = feed.drain_trades()
    assert len(raw) > 10
    reg = InstrumentRegistry()
    inst_map = reg.feed_map("okx", "spot", feed.instruments())
    recs = trades_from_feed(raw, reg.venue_id("okx"), inst_map)
    for name in ("exch_ns", "recv_ns", "trade_id", "price", "size", "side"):
        assert np.array_equal(recs[name], raw[name])
    symbols = {reg.get(int(i)).symbol for i in np.unique(recs["inst"])}
    assert symbols == {feed.instruments()[i][0] for i in np.unique(raw["inst"])}
    _, decoded = decode_batch(encode_batch(RecordKind.TRADE, recs))
    assert decoded.tobytes() == recs.tobytes()


# ---------------------------------------------------------------------- registry


def test_registry_ids_are_stable_and_lookups_work():
    reg = InstrumentRegistry()
    a = reg.instrument_id("binance", "spot", "BTCUSDT")
    b = reg.instrument_id("okx", "spot", "BTC-USDT")
    assert (a, b) == (1, 2)
    assert reg.instrument_id("binance", "spot", "BTCUSDT") == a
    assert reg.venue_id("binance") == 1 and reg.venue_id("okx") == 2
    assert reg.get(b).symbol == "BTC-USDT"
    assert reg.venue_name(2) == "okx"
    assert list(reg.venue_map()) == [0, 1, 2]
    m = reg.feed_map(
        "okx", "spot", [("ETH-USDT", "trades", "trades"), ("BTC-USDT", "books", "book")]
    )
    assert list(m) == [3, 2]
    assert len(reg) == 3
    with pytest.raises(RegistryError, match="unknown instrument"):
        reg.instrument_id("okx", "swap", "X", create=False)
    with pytest.raises(RegistryError, match="unknown instrument id 99"):
        reg.get(99)


def test_registry_refuses_conflicting_ids():
    reg = InstrumentRegistry()
    reg.add(InstrumentInfo(5, 1, "binance", "spot", "BTCUSDT"))
    with pytest.raises(RegistryError, match="already has id 5"):
        reg.add(InstrumentInfo(6, 1, "binance", "spot", "BTCUSDT"))
    with pytest.raises(RegistryError, match="already names"):
        reg.add(InstrumentInfo(5, 1, "binance", "spot", "ETHUSDT"))
    with pytest.raises(RegistryError, match="venue 'binance' already has id 1"):
        reg.add_venue("binance", 2)
    with pytest.raises(RegistryError, match=r"1\.\.255"):
        reg.add_venue("x", 256)


# ------------------------------------------------------------- COPY payload, SQL


@pytest.mark.parametrize("table", sorted(TABLES))
def test_copy_payload_encodes_big_endian_and_decodes_back(table):
    spec = TABLES[table]
    recs = random_records(spec.kind, 257, seed=len(table))
    recs["exch_ns"] = np.abs(recs["exch_ns"]) // 4  # keep ts within int64 after // 1000
    for c in spec.columns:  # values must fit the (narrower) PostgreSQL column types
        if c.source not in ("@ts",) and c.pg_type == "int2":
            recs[c.source] = recs[c.source].astype(np.int16).clip(-128, 255)
    rows = build_copy_payload(spec, recs)
    first = rows[0].tobytes()
    assert struct.unpack_from(">h", first)[0] == len(spec.columns)
    assert struct.unpack_from(">i", first, 2)[0] == 8  # ts length
    assert struct.unpack_from(">q", first, 6)[0] == int(recs["exch_ns"][0]) // 1000 - PG_EPOCH_US
    cols = [(c.name, c.pg_type) for c in spec.columns]
    be = decode_copy_payload(COPY_HEADER + rows.tobytes() + COPY_TRAILER, cols)
    for c in spec.columns:
        want = recs["exch_ns"] // 1000 - PG_EPOCH_US if c.source == "@ts" else recs[c.source]
        assert np.array_equal(be[c.name], want), c.name


def test_decode_copy_payload_rejects_bad_framing():
    spec = TABLES["trades"]
    cols = [(c.name, c.pg_type) for c in spec.columns]
    rows = build_copy_payload(spec, empty(RecordKind.TRADE, 3))
    good = COPY_HEADER + rows.tobytes() + COPY_TRAILER
    with pytest.raises(ArchiveError, match="signature"):
        decode_copy_payload(b"nope" + good[4:], cols)
    with pytest.raises(ArchiveError, match="whole rows"):
        decode_copy_payload(good[:-3] + COPY_TRAILER, cols)
    bad = bytearray(good)
    struct.pack_into(">i", bad, len(COPY_HEADER) + 2, -1)  # a NULL in the first column
    with pytest.raises(ArchiveError, match="framing"):
        decode_copy_payload(bytes(bad), cols)


def test_plain_sql_partitions_every_event_table_and_keys_contain_ts():
    stmts = migration_sql("plain")
    for spec in TABLES.values():
        create = next(s for s in stmts if s.startswith(f"CREATE TABLE IF NOT EXISTS {spec.name} ("))
        assert ("PARTITION BY RANGE (ts)" in create) == spec.partitioned
        assert "ts" in spec.key and "instrument" in spec.key and "venue" in spec.key
    text = "\n".join(stmts)
    assert "timescaledb" not in text and "time_bucket" not in text
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS bars_1m AS" in text
    assert "CREATE UNIQUE INDEX IF NOT EXISTS bars_1m_key" in text


def test_timescale_sql_hypertables_compression_and_continuous_aggregate():
    stmts = migration_sql("timescale")
    text = "\n".join(stmts)
    assert "PARTITION BY" not in text
    for spec in TABLES.values():
        hyper = (
            f"SELECT create_hypertable('{spec.name}', 'ts', "
            "chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE)"
        )
        assert (hyper in stmts) == spec.partitioned
        if spec.partitioned:
            comp = next(s for s in stmts if s.startswith(f"ALTER TABLE {spec.name} SET"))
            assert "timescaledb.compress_segmentby = 'venue, instrument'" in comp
            assert "timescaledb.compress_orderby = 'ts DESC" in comp
    cagg = next(s for s in stmts if "bars_1m" in s)
    assert "WITH (timescaledb.continuous)" in cagg
    assert "time_bucket(INTERVAL '1 minute', ts)" in cagg
    assert "first(price, trade_id)" in cagg and "last(price, trade_id)" in cagg
    assert cagg.rstrip().endswith("WITH NO DATA")  # allowed inside a transaction
    assert [m.version for m in MIGRATIONS] == sorted({m.version for m in MIGRATIONS})


def test_policy_sql_from_settings():
    s = ArchiveSettings(chunk_days=2, compress_after_days=3, retention_days={"trades": 10})
    out = [q.as_string() for q in policy_sql(s.chunk_days, 3, s.retention_days, 4, ["trades"])]
    assert out == [
        "SELECT set_chunk_time_interval('trades', INTERVAL '2 days')",
        "SELECT remove_compression_policy('trades', if_exists => TRUE)",
        "SELECT add_compression_policy('trades', INTERVAL '3 days', if_not_exists => TRUE)",
        "SELECT remove_retention_policy('trades', if_exists => TRUE)",
        "SELECT add_retention_policy('trades', INTERVAL '10 days', if_not_exists => TRUE)",
        "SELECT remove_continuous_aggregate_policy('bars_1m', if_exists => TRUE)",
        "SELECT add_continuous_aggregate_policy('bars_1m', start_offset => INTERVAL '4 days', "
        "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', "
        "if_not_exists => TRUE)",
    ]
    no_keep = [q.as_string() for q in policy_sql(1, None, {}, 2, ["deltas"])]
    assert not any("add_retention_policy" in q or "add_compression_policy" in q for q in no_keep)


def test_settings_validation():
    with pytest.raises(ArchiveError, match="unknown table"):
        ArchiveSettings(retention_days={"nope": 1})
    with pytest.raises(ArchiveError, match="ahead_days"):
        ArchiveSettings(ahead_days=-1)
    with pytest.raises(ArchiveError, match="timescale"):
        ArchiveSettings(timescale="maybe")  # type: ignore[arg-type]
