from umsrep.cli import run

raise SystemExit(run())
