"""The replicated ledger: one log of trades, the order stream, from which every replica of the order
and catalog services derives the same order log and stock table."""
