"""The committed protobuf and gRPC code is exactly what scripts/gen-proto.sh makes from the .proto files."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "client" / "goq" / "api" / "v1"


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True, capture_output=True)
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "goq" / "api" / "v1").iterdir()}
    committed = {p.name: p.read_bytes() for p in GENERATED.iterdir() if p.name in fresh or "_pb2" in p.name}
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert fresh, "gen-proto.sh generated nothing"
    assert stale == [], f"run scripts/gen-proto.sh: out of date: {stale}"
