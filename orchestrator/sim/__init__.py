"""Exchange simulator: Binance and OKX public market data on loopback."""
