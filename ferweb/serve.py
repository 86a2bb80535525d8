"""The web server: `python -m ferweb.serve [--host H] [--port P] [--workers N]`.

uvicorn worker processes (uvloop, httptools) under uvicorn's own supervisor, which restarts a
worker that dies or stops answering its health check. Several processes, so one busy view
(a prediction, a multipart upload being parsed) never holds up the others; each process also
runs sync views on threads of their own. `make run`, the Docker image, the tests and the
benchmarks all start the web tier through this one command.
"""
import argparse
import os


def default_workers() -> int:
    """One process per core and one more, so a process blocked on a long parse leaves the cores busy."""
    value = os.environ.get("FERWEB_WEB_WORKERS", "")
    return int(value) if value else (os.cpu_count() or 1) + 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("FERWEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ferweb.settings")
    from django.conf import settings

    import uvicorn

    uvicorn.run(
        "ferweb.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        lifespan="off",  # Django's ASGI handler does not speak the lifespan protocol
        # Frames up to the server's limit reach the consumer, which answers `too_large` past the
        # app's own limit; only far larger frames are cut by the server (close code 1009).
        ws_max_size=settings.FERWEB_WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=20,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        access_log=settings.FERWEB_ACCESS_LOG,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    )


if __name__ == "__main__":
    main()
