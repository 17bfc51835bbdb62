#!/usr/bin/env python
"""Django's command-line utility for the Pixelfleet API (run from the repository root or webapp/)."""
import os
import sys
from pathlib import Path


def main() -> None:
    # The engine packages (filters/, workers/) live one level up; make them importable
    # whether this is started from the repository root or from webapp/.
    root = Path(__file__).resolve().parent.parent
    for path in (str(root), str(root / "webapp")):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
