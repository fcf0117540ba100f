"""Command-line interface: parses arguments, calls the core, renders results."""

# The young generation is collected every 700 net allocations by default; an
# agentctl process allocates a few hundred thousand objects importing boto3,
# SQLAlchemy and typer, all of them long-lived, so those collections are pure
# cost (bench/README.md). A short command makes ~100,000 net allocations in all
# (credentials, exec: ~105,000; status ~94,000; validate ~50,000): at 200,000
# none of them collects at all, where at 50,000 one young collection over the
# freshly imported boto3 cost ~25 ms of CPU (5 % of `credentials`), while a
# long `exec`, `serve` or large `apply` still frees cyclic garbage regularly
# (older generations every 10 young ones, as a ratio).
GC_THRESHOLDS = (200_000, 10, 10)


def main() -> None:
    """The ``agentctl`` console script. The collector is tuned before the app is
    imported: importing typer and the CLI's modules at the default thresholds
    costs ~30 young collections (~7 ms of CPU)."""
    import gc

    gc.set_threshold(*GC_THRESHOLDS)
    from agentctl.cli.app import main as run_app

    run_app()
