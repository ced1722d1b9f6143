"""The catalog worker: owns the stock catalog and applies trades to it."""
