"""The trading rules the services share: the trade request and the stock.changed event, each in one place."""
