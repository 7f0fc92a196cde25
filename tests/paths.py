"""Where tests find the repository and the real sample data (`../shared/data` beside it)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
