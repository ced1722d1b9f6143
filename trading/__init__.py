"""The trading rules the services share: the trade request, validated in one place."""
