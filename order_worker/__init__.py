"""The order worker: executes trades through the catalog and keeps the numbered order log."""
