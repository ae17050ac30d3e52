"""OKX v5 perpetual SWAP public market data (same protocol as spot; instType SWAP)."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.venues.okx import SPEC as OKX_SPOT

__all__ = ["SPEC"]

SPEC = replace(OKX_SPOT, name="okx_swap", market="swap", inst_type="SWAP")
