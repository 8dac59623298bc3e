"""Real servers for the test suite (docs/testing.md): Redis, a Celery worker, OpenSSH, FTP/FTPS,
PostgreSQL and headless Chromium, each on a free loopback port and stopped at the end."""
