"""`python -m simple_monitoring check|metrics|monitor|stress N`."""
from simple_monitoring.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
