"""What the service tells its operators: logs, Prometheus metrics, traces."""
