#!/usr/bin/env python3
"""Decode a pprof CPU profile (e.g. from /debug/pprof/profile) with Google's profile.proto and
print a `pprof -top`-like table, as an independent check that the file is valid pprof when the
Go toolchain (`go tool pprof`) is not at hand.

    python3 -m venv target/pprof-venv && target/pprof-venv/bin/pip install grpcio-tools protobuf
    target/pprof-venv/bin/python scripts/pprof_top.py cpu.pb [N]

profile.proto is taken from the pprof crate in the cargo registry (it is Google's file, which
pprof-rs generates its types from), or from $PROFILE_PROTO.
"""
import glob
import gzip
import importlib
import os
import sys
import tempfile
from collections import Counter


def load_profile_module():
    proto = os.environ.get("PROFILE_PROTO") or next(
        iter(sorted(glob.glob(os.path.expanduser(
            "~/.cargo/registry/src/*/pprof-*/proto/profile.proto")))), None)
    if not proto:
        sys.exit("profile.proto not found: set PROFILE_PROTO (it ships with the pprof crate)")
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pprof-py-")
    rc = protoc.main(["protoc", f"-I{os.path.dirname(proto)}", f"--python_out={out}", proto])
    if rc != 0:
        sys.exit(f"protoc failed on {proto}")
    sys.path.insert(0, out)
    return importlib.import_module("profile_pb2")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top_n = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    data = open(sys.argv[1], "rb").read()
    if data[:2] == b"\x1f\x8b":  # Go writes gzip-compressed profiles; pprof reads both
        data = gzip.decompress(data)
    pb = load_profile_module()
    prof = pb.Profile()
    prof.ParseFromString(data)
    s = prof.string_table
    # pprof-rs's copy of profile.proto names ValueType.type `ty` (same field number, same wire).
    kind = "ty" if "ty" in pb.ValueType.DESCRIPTOR.fields_by_name else "type"
    types = [(s[getattr(t, kind)], s[t.unit]) for t in prof.sample_type]
    print(f"sample types: {types}; period {prof.period} {s[prof.period_type.unit]}; "
          f"duration {prof.duration_nanos / 1e9:.2f} s")
    counts = sum(smp.value[0] for smp in prof.sample)
    print(f"{counts} samples in {len(prof.sample)} distinct stacks, {len(prof.location)} locations, "
          f"{len(prof.function)} functions, {len(prof.mapping)} mappings")
    funcs = {f.id: s[f.name] for f in prof.function}
    locs = {l.id: [funcs.get(line.function_id, "?") for line in l.line] for l in prof.location}
    idx = next((i for i, t in enumerate(types) if t[0] == "cpu"), 0)
    flat, cum, total = Counter(), Counter(), 0
    for smp in prof.sample:
        v = smp.value[idx]
        total += v
        if smp.location_id:
            leaf = locs.get(smp.location_id[0], ["?"])
            flat[leaf[0] if leaf else "?"] += v
        seen = set()
        for lid in smp.location_id:
            for name in locs.get(lid, []):
                if name not in seen:
                    seen.add(name)
                    cum[name] += v
    if total == 0:
        sys.exit("profile has no samples")
    print(f"\n{'flat%':>7} {'cum%':>7}  function (top {top_n} by flat)")
    for name, v in flat.most_common(top_n):
        print(f"{100 * v / total:6.1f}% {100 * cum[name] / total:6.1f}%  {name[:110]}")


if __name__ == "__main__":
    main()
