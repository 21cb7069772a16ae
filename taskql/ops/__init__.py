"""Operating the service: logs, the access log, Prometheus metrics, OpenTelemetry traces, health."""
