"""``GET /metrics`` in Prometheus text: the web process's HTTP counters (``buyer.metrics.http``) and what the
database and the broker hold, read when scraped (``buyer.metrics.collect``)."""
