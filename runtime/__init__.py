"""What every service runs on: settings, logging, metrics and stop signals."""
