"""What every service runs on: settings, logging, metrics, stop signals and the lifecycle of its components."""
